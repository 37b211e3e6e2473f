"""StepProgressBar: training progress counted in optimizer steps, with tokens/s, losses and the ETA."""

from __future__ import annotations

import time

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class StepProgressBar(TQDMProgressBar):
    """Training progress in optimizer steps (`step 1,250/5,000`) with tokens/s, train and val loss and the ETA.

    Lightning's default bar counts batches of an epoch, which a step-based run on an endless stream does
    not have (it read `Epoch 0/-2`). Tokens per second are measured over the last refresh, validation
    time left out.
    """

    def __init__(self, refresh_rate: int = 10):
        super().__init__(refresh_rate=refresh_rate)
        self._tokens = 0
        self._since = time.perf_counter()
        self._tokens_per_sec: float | None = None

    @property
    def train_description(self) -> str:
        return "step"  # not Lightning's "Training" / "Epoch 0"

    def on_train_start(self, trainer: L.Trainer, *args) -> None:
        super().on_train_start(trainer, *args)
        self.on_train_epoch_start(trainer)  # a run resumed mid-epoch gets no on_train_epoch_start: its total here

    def on_train_epoch_start(self, trainer: L.Trainer, *_) -> None:
        # Not TQDMProgressBar's: it resets the bar to the epoch's batches and names it "Epoch <n>".
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps if trainer.max_steps > 0 else None)
        bar.n = bar.initial = trainer.global_step  # a resumed run starts where it stopped
        self._tokens, self._since = 0, time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self._tokens += _token_count(batch)
        bar, step = self.train_progress_bar, trainer.global_step
        if bar is None or bar.disable or step == bar.n:
            return
        if step % self.refresh_rate == 0 or step == bar.total:
            now = time.perf_counter()
            self._tokens_per_sec = self._tokens / max(now - self._since, 1e-9)
            self._tokens, self._since = 0, now
            bar.n = step
            bar.set_postfix(self.get_metrics(trainer, pl_module))
            bar.refresh()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._since = time.perf_counter()  # validation time is not training time

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        metrics = {k: v for k, v in super().get_metrics(trainer, pl_module).items() if k != "v_num"}
        if self._tokens_per_sec is not None:
            metrics["tok/s"] = f"{self._tokens_per_sec:,.0f}"
        return metrics


def _token_count(batch) -> int:
    """Tokens in a batch: a GPT batch (x, y) or a translation batch dict (its target tokens)."""
    if isinstance(batch, dict):
        return int(batch["tgt_out"].numel()) if "tgt_out" in batch else 0
    x = batch[0] if isinstance(batch, (list, tuple)) else batch
    return int(x.numel()) if hasattr(x, "numel") else 0
