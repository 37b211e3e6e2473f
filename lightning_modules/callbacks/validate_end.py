"""ValidateAtEnd: every run validates after its last optimizer step, whatever trainer.val_check_interval is."""

from __future__ import annotations

import logging

import lightning as L

log = logging.getLogger("tformer")


class ValidateAtEnd(L.Callback):
    """After the step that reaches trainer.max_steps, ask Lightning to stop, which makes it validate that
    step (as it does for early stopping) unless the interval validates it anyway. A run shorter than
    trainer.val_check_interval so still gets a val/loss, a best.ckpt and something for a sweep to compare."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        interval = trainer.val_check_interval
        if isinstance(interval, int) and trainer.max_steps > 0 and interval > trainer.max_steps - trainer.global_step:
            log.info(
                "trainer.val_check_interval=%d is longer than this run (trainer.max_steps=%d): validating once, "
                "at its end",
                interval,
                trainer.max_steps,
            )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True
