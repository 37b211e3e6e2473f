"""Checkpoint averaging: the mean of the weights at the last few validations (Vaswani et al. 2017 averaged
the last 5 checkpoints of their base model), written as <run>/checkpoints/averaged.ckpt once training ends.

    callbacks.averaging: {_target_: lightning_modules.callbacks.averaging.AverageCheckpoints, dirpath: ..., last_n: 5}

The weights are copied to host memory at each validation end (the last `last_n` kept), so nothing extra is
written while training. `python average.py a.ckpt b.ckpt ... -o avg.ckpt` averages checkpoint files instead.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import lightning as L
import torch

from datamodules.files import atomic_write
from errors import ConfigError


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of every floating-point tensor (summed in float64, returned in its own dtype);
    other tensors (integer buffers, counters) are taken from the last state. Keys and shapes must agree."""
    if not states:
        raise ValueError("nothing to average: no state dicts")
    keys = list(states[-1])
    for i, state in enumerate(states):
        if list(state) != keys:
            missing, extra = set(keys) - set(state), set(state) - set(keys)
            raise ValueError(f"state {i} has other parameters than the last (missing {missing}, extra {extra})")
    out = {}
    for key in keys:
        last = states[-1][key]
        shapes = {tuple(s[key].shape) for s in states}
        if len(shapes) > 1:
            raise ValueError(f"{key} has different shapes in the states to average: {sorted(shapes)}")
        if last.is_floating_point():
            total = sum(s[key].detach().to("cpu", torch.float64) for s in states)
            out[key] = (total / len(states)).to(last.dtype)
        else:
            out[key] = last.detach().clone()
    return out


class AverageCheckpoints(L.Callback):
    """Keeps the module's weights of the last `last_n` validations and writes their average to
    `<dirpath>/<filename>` when training ends (a Lightning checkpoint, weights only: translate.py and
    sample.py read it like best.ckpt)."""

    def __init__(self, dirpath: str, last_n: int = 5, filename: str = "averaged.ckpt"):
        if not isinstance(last_n, int) or isinstance(last_n, bool) or last_n < 1:
            raise ConfigError(f"callbacks.averaging.last_n must be a positive integer, got {last_n!r}")
        self.dirpath, self.last_n, self.filename = Path(dirpath), last_n, filename
        self.snapshots: deque[dict[str, torch.Tensor]] = deque(maxlen=last_n)
        self.steps: deque[int] = deque(maxlen=last_n)
        self.path: Path | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or (self.steps and self.steps[-1] == trainer.global_step):
            return
        self.snapshots.append({k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()})
        self.steps.append(trainer.global_step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.snapshots:
            return
        trained = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        pl_module.load_state_dict(average_state_dicts(list(self.snapshots)))
        self.path = self.dirpath / self.filename
        trainer.save_checkpoint(self.path, weights_only=True)  # every rank calls it (it holds a barrier)
        pl_module.load_state_dict(trained)  # the run goes on with its own weights (best.ckpt for trainer.test)
        if trainer.is_global_zero:
            checkpoint = torch.load(self.path, map_location="cpu", weights_only=True)  # the file just written
            checkpoint["averaged_steps"] = list(self.steps)
            atomic_write(self.path, lambda tmp: torch.save(checkpoint, tmp))
