"""A write that fails for lack of space or permission is the user's to fix: one line naming the folder and its free
space, instead of torch's `[enforce fail at inline_container.cc:672] unexpected pos ...` and 78 lines of trace."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from errors import UserError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


class DiskError(UserError):
    """A file could not be written: the disk is full, or the folder is read-only."""


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _cause(err: BaseException) -> str | None:
    """'no space left on device' / 'the folder is not writable (read-only file system)', or None for other errors."""
    for e in _chain(err):
        code = getattr(e, "errno", None)
        if code in NO_SPACE or "No space left on device" in str(e) or "Disk quota exceeded" in str(e):
            return "no space left on device"
        if code == errno.EROFS:
            return "read-only file system"
        if code in NOT_WRITABLE:
            return f"permission denied ({e.strerror or type(e).__name__})"
    return None


def free_space(folder: Path) -> str:
    """`1.2 GiB free of 50 GiB` for the filesystem holding folder (or its nearest existing parent)."""
    folder = Path(folder).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return "free space unknown"
    return f"{_size(usage.free)} free of {_size(usage.total)}"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def disk_error(err: BaseException, path: str | Path | None = None, *, kept: str = "") -> DiskError | None:
    """The one-line error for a write that failed for lack of space or permission (None for any other error)."""
    cause = _cause(err)
    if cause is None:
        return None
    if path is None:
        path = next((getattr(e, "filename", None) for e in _chain(err) if getattr(e, "filename", None)), None)
    target = Path(str(path)) if path else None
    folder = target.parent if target is not None else Path.cwd()
    what = f"could not write {target}" if target is not None else "a write failed"
    if cause.startswith("permission"):
        what = f"could not open {target}" if target is not None else "a file could not be opened"
    fix = "free some space there" if cause.startswith("no space") else "make the folder writable (and readable)"
    return DiskError(
        f"{what}: {cause} ({folder}: {free_space(folder)}). {kept}Fix: {fix}, or point paths.log_dir (or "
        f"hydra.run.dir) at another disk"
    )
