"""Progress, as a terminal shows it (a bar redrawn in place) or as a log file keeps it (a line every so often):
StepProgressBar for training, WorkProgress for the work after it (generation)."""

from __future__ import annotations

import logging
import sys
import time

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from tqdm import tqdm

log = logging.getLogger("tformer")


def at_terminal(stream=None) -> bool:
    """True when `stream` (stdout) is a terminal: bars redrawn in place read well there, and nowhere else."""
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


class StepProgressBar(TQDMProgressBar):
    """Training progress in optimizer steps (`step 1,250/5,000`) with tokens/s, train and val loss and the ETA.

    Lightning's default bar counts batches of an epoch, which a step-based run on an endless stream does
    not have (it read `Epoch 0/-2`). Tokens per second are measured over the last refresh, validation
    time left out. Without a terminal (a log file, CI, a SLURM .out) no bar is drawn: a plain line is
    logged every `line_every_s` seconds, after each validation and at the last step (`lines=None`: decide
    by whether stdout is a terminal).
    """

    def __init__(self, refresh_rate: int = 10, lines: bool | None = None, line_every_s: float = 30.0):
        super().__init__(refresh_rate=refresh_rate)
        self.lines = not at_terminal() if lines is None else lines
        self.line_every_s = line_every_s
        self._tokens = 0
        self._since = time.perf_counter()
        self._tokens_per_sec: float | None = None
        self._validation_start: float | None = None
        self._last_line = self._train_start = time.perf_counter()
        self._start_step = 0

    @property
    def train_description(self) -> str:
        return "step"  # not Lightning's "Training" / "Epoch 0"

    def on_train_start(self, trainer: L.Trainer, *args) -> None:
        super().on_train_start(trainer, *args)
        self.on_train_epoch_start(trainer)  # a run resumed mid-epoch gets no on_train_epoch_start: its total here

    # Without a terminal every bar is a silent one; the lines below say where training is.
    def init_sanity_tqdm(self) -> Tqdm:
        return Tqdm(disable=True) if self.lines else super().init_sanity_tqdm()

    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(disable=True) if self.lines else super().init_train_tqdm()

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True) if self.lines else super().init_validation_tqdm()

    def init_test_tqdm(self) -> Tqdm:
        return Tqdm(disable=True) if self.lines else super().init_test_tqdm()

    def init_predict_tqdm(self) -> Tqdm:
        return Tqdm(disable=True) if self.lines else super().init_predict_tqdm()

    def on_train_epoch_start(self, trainer: L.Trainer, *_) -> None:
        # Not TQDMProgressBar's: it resets the bar to the epoch's batches and names it "Epoch <n>".
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps if trainer.max_steps > 0 else None)
        bar.n = bar.initial = trainer.global_step  # a resumed run starts where it stopped
        self._tokens, self._since = 0, time.perf_counter()
        self._last_line = self._train_start = time.perf_counter()
        self._start_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self._tokens += _token_count(batch)
        bar, step = self.train_progress_bar, trainer.global_step
        if self.lines:
            self._maybe_line(trainer, pl_module)
            return
        if bar is None or bar.disable or step == bar.n:
            return
        if step % self.refresh_rate == 0 or step == bar.total:
            self._measure()
            bar.n = step
            bar.set_postfix(self.get_metrics(trainer, pl_module))
            bar.refresh()

    def _measure(self) -> None:
        now = time.perf_counter()
        self._tokens_per_sec = self._tokens / max(now - self._since, 1e-9)
        self._tokens, self._since = 0, now

    def _maybe_line(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step, last = trainer.global_step, trainer.max_steps
        if step in (self._logged_step, self._start_step):
            return
        due = time.perf_counter() - self._last_line >= self.line_every_s
        if due or step == last:
            self._measure()
            self._line(trainer, pl_module)

    _logged_step = -1

    def _line(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        step, last = trainer.global_step, trainer.max_steps
        self._last_line, self._logged_step = time.perf_counter(), step
        log.info("%s", progress_line(step, last, self.get_metrics(trainer, pl_module), self._eta(step, last)))

    def _eta(self, step: int, last: int) -> float | None:
        done, seconds = step - self._start_step, time.perf_counter() - self._train_start
        return (last - step) * seconds / done if done > 0 and last > 0 else None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_start(trainer, pl_module)
        self._validation_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if self._validation_start is not None:  # validation time is not training time: the tokens counted since
            self._since += time.perf_counter() - self._validation_start  # _since stay, their time goes on
            self._validation_start = None
        if self.lines and not trainer.sanity_checking and trainer.state.fn == "fit":
            self._line(trainer, pl_module)  # the new val/loss, once

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        """The module's per-step values (train/loss: `progress_bar_keys`, read off the device here, at a redraw),
        then Lightning's progress-bar metrics (val/loss), then tokens/s."""
        metrics = {}
        for key in getattr(pl_module, "progress_bar_keys", ()):
            value = trainer.callback_metrics.get(key)
            if value is not None:
                metrics[key] = float(value)
        lightning = super().get_metrics(trainer, pl_module)
        metrics.update((k, v) for k, v in lightning.items() if k != "v_num")
        if self._tokens_per_sec is not None:
            metrics["tok/s"] = f"{self._tokens_per_sec:,.0f}"
        return metrics


def progress_line(step: int, last: int, metrics: dict, eta_s: float | None) -> str:
    """`step 250/1,250 (20%)  train/loss 2.270  val/loss 2.266  tok/s 10,012  ETA 3 min`."""
    where = f"step {step:,}/{last:,} ({100 * step / last:.0f}%)" if last > 0 else f"step {step:,}"
    parts = [where] + [f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()]
    if eta_s is not None and step < last:
        parts.append(f"ETA {_duration(eta_s)}")
    return "  ".join(parts)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class WorkProgress:
    """Progress of work counted in units (generated tokens): a bar at a terminal, else a log line every
    `every_s` seconds. `add(n)` grows the total (work found on the way), `update(n)` counts work done."""

    def __init__(self, what: str, total: int, unit: str, every_s: float = 10.0, lines: bool | None = None):
        self.what, self.unit, self.every_s = what, unit, every_s
        self.total, self.n = total, 0
        self.lines = not at_terminal(sys.stderr) if lines is None else lines
        self.start = self._last = time.perf_counter()
        self.bar = None if self.lines else tqdm(total=total, desc=what, unit=unit, leave=False, mininterval=1)

    def add(self, n: int) -> None:
        self.total += n
        if self.bar is not None:
            self.bar.total = self.total

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.perf_counter() - self._last >= self.every_s:
            self._last = time.perf_counter()
            seconds = self._last - self.start
            log.info("%s: %s/%s %s (%.0f%%), %.0f s", self.what, f"{self.n:,}", f"{self.total:,}", self.unit,
                     100 * self.n / max(1, self.total), seconds)  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> WorkProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _token_count(batch) -> int:
    """Tokens in a batch: a GPT batch (x, y) or a translation batch dict (its target tokens)."""
    if isinstance(batch, dict):
        return int(batch["tgt_out"].numel()) if "tgt_out" in batch else 0
    x = batch[0] if isinstance(batch, (list, tuple)) else batch
    return int(x.numel()) if hasattr(x, "numel") else 0
