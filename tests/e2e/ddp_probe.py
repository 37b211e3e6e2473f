"""A test-only callback, added to train.py runs with +callbacks.probe=...: which data each DDP rank saw."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch


class ShardProbe(L.Callback):
    """Writes <out_dir>/rank<k>.json: world size, the first training windows and the validation indices."""

    def __init__(self, out_dir: str):
        self.out_dir = Path(out_dir)
        self.record: dict = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.record["first_train_windows"] = batch[0][:, :8].tolist()

    def on_validation_start(self, trainer, pl_module) -> None:
        if "val_indices" not in self.record:
            loader = trainer.val_dataloaders
            self.record["val_indices"] = list(iter(loader.sampler))
            self.record["val_windows"] = len(loader.dataset)
            self.record["val_sampler"] = type(loader.sampler).__name__

    def on_fit_end(self, trainer, pl_module) -> None:
        self.record["world_size"] = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        self.record["global_rank"] = trainer.global_rank
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.record))


class FailOnRank(L.Callback):
    """Raises on one rank at a training step: a rank that dies (out of memory, say) while the others train."""

    def __init__(self, rank: int, step: int = 2):
        self.rank, self.step = rank, step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            raise RuntimeError(f"simulated failure on rank {self.rank} at step {self.step}")


class StopOnRank(L.Callback):
    """Stops its own process (SIGSTOP) on one rank at a training step: a rank that is alive but stuck."""

    def __init__(self, rank: int, step: int = 2):
        self.rank, self.step = rank, step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGSTOP)
