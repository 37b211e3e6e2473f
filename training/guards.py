"""The callbacks every training run gets, whatever its `callbacks=` config: they keep what it saves trustworthy."""

from __future__ import annotations

import lightning as L

from lightning_modules.callbacks.finite import StopOnNonFinite
from training.resume import RunOverrides
from training.signals import StopOnSignal


def guard_callbacks() -> list[L.Callback]:
    """A non-finite loss stops the run (and no non-finite checkpoint is written); SIGTERM / SIGUSR1 / Ctrl-C save
    last.ckpt at the current step and exit non-zero; every checkpoint keeps the run's overrides for resuming."""
    return [StopOnNonFinite(), StopOnSignal(), RunOverrides()]
