"""training/checkpoint_io.py: checkpoints go through a synced temporary file beside the destination."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.strategies import FSDPStrategy

from training.checkpoint_io import AtomicCheckpointIO, use_atomic_checkpoints
from training.disk import DiskError


@pytest.fixture
def other_tmpdir(tmp_path, monkeypatch):
    """$TMPDIR (Python's tempfile default) pointed at an empty folder that must stay empty."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_save_replaces_the_file_in_one_step(tmp_path, other_tmpdir):
    path = tmp_path / "ckpt" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 2, "w": torch.ones(3)}, path)
    inode = path.stat().st_ino
    io.save_checkpoint({"global_step": 4, "w": torch.zeros(3)}, path)
    assert torch.load(path, weights_only=False)["global_step"] == 4
    assert path.stat().st_ino != inode  # a new file renamed over the old one, not the old one rewritten
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"] and not list(other_tmpdir.iterdir())
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_a_failed_save_leaves_the_old_checkpoint_and_no_temporary(tmp_path, other_tmpdir):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 2}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full (simulated)")

    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"global_step": 4, "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=False)["global_step"] == 2
    assert [p.name for p in tmp_path.iterdir() if p.name != "tmpdir"] == ["last.ckpt"]
    assert not list(other_tmpdir.iterdir())


def test_every_strategy_that_saves_with_torch_io_gets_the_atomic_one(tmp_path):
    for kwargs in ({}, {"strategy": "ddp", "accelerator": "cpu", "devices": 2}):
        trainer = L.Trainer(logger=False, enable_checkpointing=False, **kwargs)
        assert type(trainer.strategy.checkpoint_io) is TorchCheckpointIO
        use_atomic_checkpoints(trainer)
        assert type(trainer.strategy.checkpoint_io) is AtomicCheckpointIO
    # FSDP with full state dicts gathers one file and saves it through the strategy's CheckpointIO (no GPU here:
    # the strategy alone, as the Trainer would hold it).
    fsdp = FSDPStrategy(state_dict_type="full")
    use_atomic_checkpoints(SimpleNamespace(strategy=fsdp))
    assert type(fsdp.checkpoint_io) is AtomicCheckpointIO
    fsdp.save_checkpoint({"global_step": 1}, tmp_path / "fsdp.ckpt")
    assert torch.load(tmp_path / "fsdp.ckpt", weights_only=False) == {"global_step": 1}


def test_a_checkpoint_io_of_another_kind_is_left_alone():
    class Custom(TorchCheckpointIO):
        pass

    trainer = L.Trainer(logger=False, enable_checkpointing=False, plugins=[Custom()])
    use_atomic_checkpoints(trainer)
    assert type(trainer.strategy.checkpoint_io) is Custom


def write_to_full_disk(checkpoint, tmp) -> None:
    """What _write_synced meets on a full disk: /dev/full answers every write with ENOSPC."""
    with open("/dev/full", "wb") as f:
        torch.save(checkpoint, f)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_one_line_naming_the_folder_and_its_free_space(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 2}, path)
    monkeypatch.setattr("training.checkpoint_io._write_synced", write_to_full_disk)
    with pytest.raises(DiskError) as err:
        io.save_checkpoint({"global_step": 4, "w": torch.zeros(100_000)}, path)
    message = str(err.value)
    assert message.startswith(f"could not write {path}: no space left on device ({path.parent}: ")
    assert " free of " in message and "The checkpoints written before are kept" in message
    assert "inline_container" not in message and "\n" not in message
    assert torch.load(path, weights_only=True)["global_step"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_a_read_only_folder_is_one_line_too(tmp_path, monkeypatch):
    def read_only(checkpoint, tmp):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp))

    monkeypatch.setattr("training.checkpoint_io._write_synced", read_only)
    with pytest.raises(DiskError, match=rf"could not write {tmp_path / 'best.ckpt'}: read-only file system \("):
        AtomicCheckpointIO().save_checkpoint({"global_step": 4}, tmp_path / "best.ckpt")


def test_other_errors_of_a_save_keep_their_traceback(tmp_path, monkeypatch):
    def bug(checkpoint, tmp):
        raise RuntimeError("a bug, not the disk")

    monkeypatch.setattr("training.checkpoint_io._write_synced", bug)
    with pytest.raises(RuntimeError, match="a bug, not the disk"):
        AtomicCheckpointIO().save_checkpoint({"global_step": 4}, tmp_path / "best.ckpt")


def test_the_next_run_removes_the_temporary_files_of_interrupted_writes(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stale = [folder / ".last.ckpt.k3j2x9.tmp", folder / ".best.ckpt.a1b2c3.tmp"]
    kept = [folder / "last.ckpt", folder / ".notes.tmp", folder / "other.txt"]
    for p in stale + kept:
        p.write_bytes(b"x" * 10)
    callback = ModelCheckpoint(dirpath=folder)
    trainer = L.Trainer(logger=False, callbacks=[callback], enable_progress_bar=False)
    use_atomic_checkpoints(trainer)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in kept)
