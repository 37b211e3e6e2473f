"""A test-only callback, added to train.py runs with +callbacks.ballast=...: checkpoints large enough to take a
while to write, so that a test can kill the run in the middle of writing one."""

from __future__ import annotations

import lightning as L
import torch


class Ballast(L.Callback):
    """From `from_step` on, every checkpoint carries `mb` MiB of extra data."""

    def __init__(self, mb: int = 64, from_step: int = 4):
        self.numel, self.from_step = mb * 2**18, from_step  # float32: 4 bytes each

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if trainer.global_step >= self.from_step:
            checkpoint["ballast"] = torch.ones(self.numel)


class StepMarker(L.Callback):
    """Creates `path` once training has reached `step` (rank zero): when a test may send its signal."""

    def __init__(self, path: str, step: int = 3):
        self.path, self.step = path, step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step and trainer.is_global_zero:
            from pathlib import Path

            Path(self.path).touch()
