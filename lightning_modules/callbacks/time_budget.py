"""ScheduleFollowsClock: under a wall-time budget (trainer.max_time), the cosine decay ends when the time does."""

from __future__ import annotations

import logging

import lightning as L
from lightning.pytorch.callbacks import Timer

log = logging.getLogger("tformer")


class ScheduleFollowsClock(L.Callback):
    """With trainer.max_time set, a run stops when its time is up, whatever trainer.max_steps says. A cosine
    schedule planned over max_steps (a backstop, say 10^9) would then never decay. At every step this callback
    projects the steps the run will reach by the end of its time, from its pace since `start_after` steps (the
    first steps carry one-off costs), and shortens the schedule's length to that projection: the learning rate
    reaches optim.min_lr as the time runs out. A schedule that would end before the time does is left alone, so a
    max_time meant as a safety stop changes nothing unless it would cut the run short. The length lives in the
    schedule object, which the checkpoint saves: a resumed run continues from it."""

    def __init__(self, start_after: int = 10):
        self.start_after = start_after
        self._mark: tuple[int, float] | None = None  # (step, elapsed seconds) where the pace is measured from
        self._planned: int | None = None

    @staticmethod
    def _timer(trainer: L.Trainer) -> Timer | None:
        return next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)

    @staticmethod
    def _schedule(trainer: L.Trainer):
        configs = trainer.lr_scheduler_configs
        lambdas = getattr(configs[0].scheduler, "lr_lambdas", None) if configs else None
        schedule = lambdas[0] if lambdas else None
        return schedule if getattr(schedule, "kind", None) == "cosine" else None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx) -> None:
        timer, schedule = self._timer(trainer), self._schedule(trainer)
        if timer is None or schedule is None or timer.time_remaining("train") is None:
            return
        step, elapsed = trainer.global_step, timer.time_elapsed("train")
        if self._planned is None:  # the length the config plans (a resumed schedule may already be shortened)
            optim = getattr(pl_module, "optim_cfg", None)
            plan = getattr(pl_module, "schedule_steps", None)
            self._planned = (getattr(optim, "decay_steps", None) or plan()) if plan else schedule.total
        if step < self.start_after:
            return
        if self._mark is None:
            self._mark = (step, elapsed)
            return
        steps, seconds = step - self._mark[0], elapsed - self._mark[1]
        if steps <= 0 or seconds <= 0:
            return
        projected = step + int(steps / seconds * timer.time_remaining("train"))
        schedule.total = max(step + 1, schedule.warmup + 1, min(self._planned, projected))
