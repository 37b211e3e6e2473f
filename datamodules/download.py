"""Download a corpus file once, verified, without ever leaving a partial file behind."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path


class CorpusUnavailable(FileNotFoundError):
    """The corpus is neither on disk nor downloadable; the message says how to fix it."""


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(
    url: str,
    dest: str | Path,
    *,
    size: int | None = None,
    md5: str | None = None,
    timeout: float = 30.0,
    hint: str = "",
) -> Path:
    """Return dest, downloading it from url first if it is missing.

    The download goes to a temporary file beside dest and is renamed into place only after its size
    and md5 check out, so an interrupted, truncated or corrupted download leaves nothing behind.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as err:
        raise CorpusUnavailable(f"{dest} is missing and its folder is not writable ({err}). {hint}") from err
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
        got = tmp.stat().st_size
        if size is not None and got != size:
            raise CorpusUnavailable(f"download of {url} is {got} bytes, expected {size}: rejected. {hint}")
        if md5 is not None and (digest := md5sum(tmp)) != md5:
            raise CorpusUnavailable(f"download of {url} has md5 {digest}, expected {md5}: rejected. {hint}")
        os.replace(tmp, dest)
    except CorpusUnavailable:
        raise
    except Exception as err:
        raise CorpusUnavailable(
            f"{dest} is missing and downloading it from {url} failed ({type(err).__name__}: {err}). {hint}"
        ) from err
    finally:
        tmp.unlink(missing_ok=True)
    return dest
