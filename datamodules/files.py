"""Corpus files: which files a data.<field> names, UTF-8 text streamed with clear errors, atomic writes,
verified downloads, and a short name for a corpus (run names, W&B tags)."""

from __future__ import annotations

import codecs
import glob
import hashlib
import io
import os
import re
import tempfile
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from errors import ConfigError, MissingFileError

READ_BYTES = 1 << 22  # bytes read at a time: corpora are streamed, never read whole


class CorpusUnavailable(MissingFileError):
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


def iter_utf8(path: str | Path, *, translate_newlines: bool = True, block: int = READ_BYTES) -> Iterator[str]:
    """The text of a UTF-8 file in blocks, never the whole file in memory.

    translate_newlines: "\\r\\n" and "\\r" become "\\n" (as open() reads text). A NUL byte (a binary file) or
    bytes that are not UTF-8 raise ValueError naming the file and the byte offset.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    text_decoder = io.IncrementalNewlineDecoder(decoder, translate=True) if translate_newlines else decoder
    offset = 0
    with open(path, "rb") as f:
        while True:
            raw = f.read(block)
            if (nul := raw.find(b"\x00")) >= 0:
                raise ConfigError(f"{path} is a binary file, not text: a NUL byte at byte offset {offset + nul}")
            pending = len(decoder.getstate()[0])  # bytes of a character cut off by the previous block
            try:
                text = text_decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as err:
                at, byte = offset - pending + err.start, err.object[err.start]
                raise ConfigError(
                    f"{path} is not UTF-8 text: byte 0x{byte:02x} at byte offset {at} ({err.reason}); "
                    f"convert it, e.g. iconv -f latin1 -t utf-8"
                ) from None
            offset += len(raw)
            if text:
                yield text
            if not raw:
                return


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file, whitespace-stripped. Splits on "\\n" only (not on Unicode separators)."""
    lines = "".join(iter_utf8(path, translate_newlines=False)).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


GLOB_CHARS = re.compile(r"[*?[]")


def expand_paths(spec: str | Path | Sequence[str | Path], field: str) -> list[Path]:
    """The files a data.<field> value names, in order: a file, a folder (its files, recursively, sorted by path;
    hidden ones skipped), a glob pattern (`**` recurses), or a list of these. Raises naming the field when a
    name matches nothing or a file is empty."""
    items = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if not items:
        raise ConfigError(f"data.{field} is an empty list: name at least one file")
    files: list[Path] = []
    for item in items:
        path = Path(str(item)).expanduser()
        if path.is_file():
            found = [path]
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
            if not found:
                raise MissingFileError(f"data.{field}={item}: the folder holds no files")
        elif GLOB_CHARS.search(str(path)):
            found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
            if not found:
                raise MissingFileError(f"data.{field}={item}: the pattern matches no file")
        else:
            raise MissingFileError(f"data.{field}={item}: no such file or folder (from {Path.cwd()})")
        for p in found:
            if p.stat().st_size == 0:
                raise ConfigError(f"data.{field}: {p} is empty (0 bytes); remove it or name other files")
        files += [p for p in found if p not in files]
    return files


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def corpus_name(default: str, *specs) -> str:
    """A short name for a corpus from the values that name it (files, folders, globs, lists, dataset ids; None
    skipped): the stem of a file, the name of a folder or of a glob's folder, joined by "-"; `default` when
    none is set. For run names and W&B tags (at most 64 characters)."""
    names = []
    for spec in specs:
        if spec is None or spec == "":
            continue
        first = spec if isinstance(spec, (str, Path)) else next(iter(spec), None)
        if first is None:
            continue
        parts = [p for p in Path(str(first)).parts if not GLOB_CHARS.search(p)]
        path = Path(*parts) if parts else Path("corpus")
        name = path.stem if Path(str(first)).suffix and path.name == Path(str(first)).name else path.name
        if not isinstance(spec, (str, Path)) and len(spec) > 1:
            name += f"+{len(spec) - 1}"
        names.append(name)
    name = re.sub(r"[^\w.+-]+", "_", "-".join(names), flags=re.ASCII).strip("_.") or default
    return name[:64]
