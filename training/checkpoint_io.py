"""Checkpoints written atomically, wherever $TMPDIR is.

Lightning's TorchCheckpointIO writes a checkpoint to a temporary file in $TMPDIR and moves it over the
destination; when $TMPDIR is another filesystem (tmpfs /tmp, node-local scratch) the move is a copy in place, so
a kill during it leaves a truncated `last.ckpt` and an orphan in $TMPDIR. `AtomicCheckpointIO` writes the
temporary file beside the destination (`.last.ckpt.<random>.tmp`), fsyncs it and renames it over the
destination: readers (and a resumed run) see the old checkpoint or the new one, never part of one. A kill
during the write can leave only that hidden temporary file beside the checkpoint; the next run that saves into
that folder removes it (`use_atomic_checkpoints`). A save that fails for lack of space or permission is one line
naming the folder and its free space (training/disk). Loads go through training/safe_load (data, never code).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from datamodules.files import atomic_write
from training import safe_load
from training.disk import disk_error

_UMASK = os.umask(0)
os.umask(_UMASK)


def _write_synced(checkpoint: dict[str, Any], tmp: Path) -> None:
    with open(tmp, "wb") as f:
        torch.save(checkpoint, f)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~_UMASK)  # the permissions a plain open() would give, not mkstemp's 0600


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable (a crash of the machine right after keeps the new name)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local saves go through a synced temporary file beside the destination."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or get_filesystem(path).protocol not in ("file", ("file", "local")):
            return super().save_checkpoint(checkpoint, path, storage_options)  # remote storage: Lightning's way
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: _write_synced(checkpoint, tmp))
        except (OSError, RuntimeError) as err:  # torch reports a full disk as a RuntimeError (unexpected pos)
            kept = "The checkpoints written before are kept. " if path.parent.is_dir() else ""
            if (error := disk_error(err, path, kept=kept)) is None:
                raise
            raise error from err
        _fsync_dir(path.parent)
        return None

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        """Lightning's resume (trainer.fit(ckpt_path=...)) and trainer.test(ckpt_path=...): as data
        (weights_only), whatever Lightning asks, unless trust_checkpoint=true (training/safe_load)."""
        if get_filesystem(path).protocol not in ("file", ("file", "local")):
            return super().load_checkpoint(path, weights_only=True)
        return safe_load.load(path, map_location=map_location or "cpu")


def stale_temporaries(folder: Path) -> list[Path]:
    """Temporary files of checkpoint writes that never finished (`.last.ckpt.<random>.tmp`, a killed run's)."""
    return sorted(p for p in Path(folder).glob(".*.ckpt.*.tmp") if p.is_file()) if Path(folder).is_dir() else []


def use_atomic_checkpoints(trainer) -> None:
    """Give the trainer's strategy an AtomicCheckpointIO where it would save with Lightning's TorchCheckpointIO
    (single device, DDP, FSDP with full state dicts); a CheckpointIO of another kind (XLA, one set in the
    config) is left alone."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    if getattr(trainer, "is_global_zero", False):  # this run owns its checkpoint folders (training/rundir)
        for callback in getattr(trainer, "checkpoint_callbacks", []):
            for tmp in stale_temporaries(Path(callback.dirpath)) if getattr(callback, "dirpath", None) else []:
                tmp.unlink(missing_ok=True)
