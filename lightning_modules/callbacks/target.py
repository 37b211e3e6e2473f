"""TargetStop: end training once a validation metric reaches a target, and record when that happened.

    callbacks.target: {_target_: lightning_modules.callbacks.target.TargetStop, output_dir: ..., target: 1.47}

After every validation it reads `monitor` (val/loss); the first time it is at or below `target` (mode=min;
at or above with mode=max) it records the step, the value and the wall time since launch
(`hardware.launch_time`: the start of train.py, or what a launcher set in $TFORMER_LAUNCH_TIME) and since
fit start, in <run>/target.json and as `target/*` metrics, and stops the run (stop=true). A run that
never gets there writes target.json with reached=false and the best value seen.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L

from errors import ConfigError
from lightning_modules.callbacks.measure import log_metrics
from lightning_modules.hardware import since_launch


class TargetStop(L.Callback):
    def __init__(
        self,
        output_dir: str,
        target: float,
        monitor: str = "val/loss",
        mode: str = "min",
        stop: bool = True,
        save_checkpoint: bool = False,
    ):
        if mode not in ("min", "max"):
            raise ConfigError(f"callbacks.target.mode={mode!r} must be min or max")
        self.output_dir, self.target, self.monitor, self.mode = Path(output_dir), float(target), monitor, mode
        self.stop, self.save_checkpoint = stop, save_checkpoint
        self.result: dict | None = None
        self.best: float | None = None

    def _better(self, a: float, b: float) -> bool:
        return a <= b if self.mode == "min" else a >= b

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_start = time.time()
        self.result, self.best = None, None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.result is not None:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value = float(value)  # the validation has ended: reading it back costs nothing more
        elapsed = since_launch()
        if self.best is None or self._better(value, self.best):
            self.best = value
        reached = trainer.strategy.reduce_boolean_decision(self._better(value, self.target), all=False)
        if not reached:
            return
        self.result = {
            "reached": True,
            "monitor": self.monitor,
            "target": self.target,
            "value": value,
            "step": trainer.global_step,
            "elapsed_since_launch": elapsed,
            "elapsed_since_fit_start": time.time() - self.fit_start,
        }
        if trainer.is_global_zero:
            log_metrics(trainer, {"target/elapsed": elapsed, "target/step": trainer.global_step})
            self._write(self.result)
        if self.stop:
            trainer.should_stop = True
        if self.save_checkpoint:  # after the clock was read: the write is not part of the time to target
            # weights_only=False: the whole, resumable checkpoint (None makes Lightning log that it defaulted)
            trainer.save_checkpoint(self.output_dir / "checkpoints" / "target.ckpt", weights_only=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.result is None and trainer.is_global_zero:
            self._write(
                {"reached": False, "monitor": self.monitor, "target": self.target, "best": self.best,
                 "steps": trainer.global_step, "elapsed_since_launch": since_launch()}
            )  # fmt: skip

    def _write(self, record: dict) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "target.json").write_text(json.dumps(record, indent=2))
