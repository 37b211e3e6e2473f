"""Corpus files: UTF-8 lines read with clear errors, atomic writes, and verified downloads."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path


class CorpusUnavailable(FileNotFoundError):
    """The corpus is neither on disk nor downloadable; the message says how to fix it."""


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call write(tmp) on a temporary file beside path, then rename it over path in one step.

    Readers see the old file or the new one, never half of one; when write raises (or the process dies),
    path is untouched and the temporary file is removed (or left as a hidden `.<name>.*.tmp`).
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


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

    def download(tmp: Path) -> None:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
        got = tmp.stat().st_size
        if size is not None and got != size:
            raise CorpusUnavailable(f"download of {url} is {got} bytes, expected {size}: rejected. {hint}")
        if md5 is not None and (digest := md5sum(tmp)) != md5:
            raise CorpusUnavailable(f"download of {url} has md5 {digest}, expected {md5}: rejected. {hint}")

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CorpusUnavailable(f"{dest} is missing and its folder is not writable ({err}). {hint}") from err
    try:
        return atomic_write(dest, download)
    except CorpusUnavailable:
        raise
    except Exception as err:
        raise CorpusUnavailable(
            f"{dest} is missing and downloading it from {url} failed ({type(err).__name__}: {err}). {hint}"
        ) from err


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file, whitespace-stripped. Splits on "\\n" only (not on Unicode separators)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err}); convert it, e.g. with iconv -t utf-8") from err
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]
