"""ScheduleFollowsClock: the cosine schedule's length follows the pace of the run under trainer.max_time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import Timer
from torch.optim.lr_scheduler import LambdaLR

from lightning_modules.callbacks.time_budget import ScheduleFollowsClock
from lightning_modules.optim import Schedule


class FakeTimer(Timer):
    """A Timer whose clock the test sets: `now` seconds of training out of `budget`."""

    def __init__(self, budget: float | None):
        super().__init__(duration=None)
        self.budget, self.now = budget, 0.0

    def time_elapsed(self, stage="train") -> float:
        return self.now

    def time_remaining(self, stage="train") -> float | None:
        return None if self.budget is None else max(0.0, self.budget - self.now)


def fake_trainer(schedule: Schedule, timer: Timer | None):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = LambdaLR(opt, schedule)
    return SimpleNamespace(
        callbacks=[timer] if timer else [], lr_scheduler_configs=[SimpleNamespace(scheduler=sched)], global_step=0
    )


def run_steps(cb, trainer, timer, steps: int, seconds_per_step: float) -> list[int]:
    module = SimpleNamespace(optim_cfg=SimpleNamespace(decay_steps=None), schedule_steps=lambda: 10**9)
    totals = []
    for step in range(steps):
        trainer.global_step = step
        timer.now = step * seconds_per_step + (2.0 if step else 0.0)  # the first step costs 2 s more
        cb.on_train_batch_start(trainer, module, None, step)
        totals.append(trainer.lr_scheduler_configs[0].scheduler.lr_lambdas[0].total)
    return totals


def test_the_cosine_ends_when_the_time_does():
    schedule = Schedule("cosine", warmup=5, total=10**9, min_ratio=0.1)
    timer = FakeTimer(budget=102.0)  # 2 s of one-off cost + 100 s at 0.5 s a step: 200 steps in all
    trainer = fake_trainer(schedule, timer)
    totals = run_steps(ScheduleFollowsClock(start_after=10), trainer, timer, steps=150, seconds_per_step=0.5)
    assert totals[10] == 10**9  # before the pace is known: the plan
    assert totals[-1] == pytest.approx(200, abs=1)  # the pace since step 10 excludes the first step's extra 2 s
    assert schedule(199) == pytest.approx(0.1, abs=1e-3) and schedule(100) > 0.5


def test_a_schedule_that_ends_before_the_time_is_left_alone():
    schedule = Schedule("cosine", warmup=0, total=50, min_ratio=0.0)
    timer = FakeTimer(budget=1000.0)  # a safety stop far beyond the 50 planned steps
    trainer = fake_trainer(schedule, timer)
    cb = ScheduleFollowsClock(start_after=2)
    module = SimpleNamespace(optim_cfg=SimpleNamespace(decay_steps=None), schedule_steps=lambda: 50)
    for step in range(20):
        trainer.global_step, timer.now = step, step * 0.1
        cb.on_train_batch_start(trainer, module, None, step)
    assert schedule.total == 50


@pytest.mark.parametrize("timer", [None, FakeTimer(budget=None)], ids=["no-timer", "no-max-time"])
def test_without_a_time_budget_nothing_changes(timer):
    schedule = Schedule("cosine", warmup=0, total=300, min_ratio=0.0)
    trainer = fake_trainer(schedule, timer)
    module = SimpleNamespace(optim_cfg=SimpleNamespace(decay_steps=None), schedule_steps=lambda: 300)
    for step in range(30):
        trainer.global_step = step
        ScheduleFollowsClock(start_after=1).on_train_batch_start(trainer, module, None, step)
    assert schedule.total == 300


def test_other_schedules_are_not_touched():
    schedule = Schedule("constant", warmup=0, total=10**9, min_ratio=1.0)
    timer = FakeTimer(budget=10.0)
    trainer = fake_trainer(schedule, timer)
    run_steps(ScheduleFollowsClock(start_after=1), trainer, timer, steps=10, seconds_per_step=0.5)
    assert schedule.total == 10**9
