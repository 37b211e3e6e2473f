"""FirstStep: a callback bench/cpu.py adds to train.py to time launch -> the end of the first training step.

    +callbacks.first_step._target_=bench.first_step.FirstStep +callbacks.first_step.output_dir=${paths.output_dir}

It writes <output_dir>/first_step.json once: {"elapsed_since_launch": s, "step": 1}, on the clock Measure
and TargetStop use (lightning_modules/hardware.since_launch: $TFORMER_LAUNCH_TIME, set by the benchmark).
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch

from lightning_modules.hardware import since_launch


class FirstStep(L.Callback):
    def __init__(self, output_dir: str):
        self.output_dir = Path(output_dir)
        self.done = False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if self.done or trainer.global_step < 1:  # accumulating: the first optimizer step is not done yet
            return
        self.done = True
        if pl_module.device.type == "cuda":  # the step's kernels done, not only queued
            torch.cuda.synchronize(pl_module.device)
        elapsed = since_launch()  # before the write: the file is not part of the time
        if trainer.is_global_zero:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            record = {"elapsed_since_launch": elapsed, "step": trainer.global_step}
            (self.output_dir / "first_step.json").write_text(json.dumps(record, indent=2))
