"""The learning rate in the metrics: Lightning's LearningRateMonitor, once per optimizer step."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor


class StepLearningRateMonitor(LearningRateMonitor):
    """LearningRateMonitor logs before every batch; with trainer.accumulate_grad_batches=k the k batches of one
    optimizer step would log the same rate k times. Log it at the first batch of each optimizer step only.
    The rates are named after the scheduler and its parameter groups: train/lr/decay, train/lr/no_decay (and
    train/lr/muon with optim.name=muon)."""

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if batch_idx % trainer.accumulate_grad_batches == 0:
            super().on_train_batch_start(trainer, pl_module, batch, batch_idx)
