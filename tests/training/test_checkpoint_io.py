"""training/checkpoint_io.py: checkpoints go through a synced temporary file beside the destination."""

from __future__ import annotations

import os
import stat
import tempfile
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.strategies import FSDPStrategy

from training.checkpoint_io import AtomicCheckpointIO, use_atomic_checkpoints


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
