"""A stop signal is a checkpoint, never a success: SIGTERM (a scheduler's preemption), SIGUSR1 (SLURM's warning
signal) and Ctrl-C end a run with a resumable `last.ckpt` at the current step and a non-zero exit: 128 + the
signal's number (143 SIGTERM, 138 SIGUSR1, 130 Ctrl-C), which schedulers read as "requeue", never as done.

- While the training loop runs, `StopOnSignal` (a Lightning callback) only notes the signal; at the end of the
  current optimizer step every rank agrees (a max-reduction of what each rank received), the trainer saves
  `last.ckpt` (the strategy's atomic CheckpointIO, written by rank zero) and the run raises `RunStopped`. A second
  Ctrl-C stops at once, saving nothing more.
- Outside the loop (data preparation, the end-of-run samples), `stop_on_signals()` turns SIGTERM / SIGUSR1 into
  `RunStopped` at once; Ctrl-C is Python's KeyboardInterrupt there.
- `RunStopped` is a SystemExit carrying the exit status: it passes Hydra (which swallows exceptions into job
  results) and Lightning (which re-raises it after its own clean-up); training/sweep.run_job reports it, marks
  a multirun job `terminated` and writes the sweep's summary.
- Under SLURM with Lightning's auto-requeue, SIGUSR1 stays Lightning's (it saves an hpc checkpoint and requeues
  the job): a handler already installed for SIGUSR1 when training starts is left alone.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch

log = logging.getLogger("tformer")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class RunStopped(SystemExit):
    """The run was stopped by a signal; `code` (SystemExit's exit status) is 128 + the signal's number."""

    def __init__(self, signum: int, *, step: int | None = None, max_steps: int | None = None,
                 checkpoint: str | None = None, at_once: bool = False):  # fmt: skip
        super().__init__(128 + int(signum))
        self.signum, self.step, self.max_steps, self.checkpoint, self.at_once = (
            int(signum), step, max_steps, checkpoint, at_once)  # fmt: skip

    @property
    def signal_name(self) -> str:
        return "Ctrl-C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name

    def describe(self) -> str:
        """One line: what stopped the run, where, and how to go on."""
        where = f" at step {self.step}" if self.step is not None else ""
        if self.step is not None and self.max_steps and self.max_steps > 0:
            where += f" of {self.max_steps}"
        if self.checkpoint:
            saved = "saved" if not self.at_once else "kept (nothing saved after it)"
            resume = f"python train.py ckpt_path={self.checkpoint}"
            return f"Stopped by {self.signal_name}{where}: {self.checkpoint} {saved}. Resume with: {resume}"
        return f"Stopped by {self.signal_name}{where}, before any checkpoint: nothing to resume; start the run again"

    def __reduce__(self):  # picklable (multiprocessing, submitit)
        return (_rebuild, (self.signum, self.step, self.max_steps, self.checkpoint, self.at_once))


def _rebuild(signum, step, max_steps, checkpoint, at_once) -> RunStopped:
    return RunStopped(signum, step=step, max_steps=max_steps, checkpoint=checkpoint, at_once=at_once)


def _stop_now(signum, frame) -> None:
    raise RunStopped(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def under_slurm() -> bool:
    """A SLURM job that Lightning will run with its SLURMEnvironment (SIGUSR1: its auto-requeue)."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return SLURMEnvironment.detect()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Around one run or multirun job: SIGTERM (and SIGUSR1, outside SLURM, where Lightning registers its requeue
    only if no handler is set) raise RunStopped, where no other handler is set."""
    if not _main_thread():
        yield
        return
    signums = (signal.SIGTERM,) if under_slurm() else (signal.SIGTERM, signal.SIGUSR1)
    previous = {s: signal.getsignal(s) for s in signums}
    for signum, handler in previous.items():
        if handler in (signal.SIG_DFL, None):
            signal.signal(signum, _stop_now)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)


def last_checkpoint_path(trainer: L.Trainer) -> Path:
    """Where ModelCheckpoint keeps last.ckpt (<run>/checkpoints/last.ckpt without one)."""
    callback = trainer.checkpoint_callback
    if callback is not None and callback.dirpath:
        return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
    return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"


class StopOnSignal(L.Callback):
    """Notes SIGTERM / SIGUSR1 / Ctrl-C while training and stops at the end of the step with last.ckpt saved."""

    def __init__(self) -> None:
        self.received = 0  # the first stop signal this process received (0: none)
        self.trainer: L.Trainer | None = None
        self.training = False  # between setup and the end of training: a signal waits for the end of the step
        self.previous_sigint = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":  # Ctrl-C from here on (Lightning's own handling would exit 1, saving nothing)
            self.training, self.previous_sigint = True, signal.getsignal(signal.SIGINT)
            self._install(trainer, (signal.SIGINT,))

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.on_exception(trainer, pl_module, None)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception) -> None:
        self.training = False
        if self.previous_sigint is not None and _main_thread():
            signal.signal(signal.SIGINT, self.previous_sigint)
            self.previous_sigint = None

    # Lightning installs its own SIGTERM handler (which exits 0) just before the loops run: replace it there.
    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(trainer, STOP_SIGNALS)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(trainer, STOP_SIGNALS)

    def _install(self, trainer: L.Trainer, signums: tuple[int, ...]) -> None:
        self.trainer = trainer
        if not _main_thread():
            return
        for signum in signums:
            current = signal.getsignal(signum)
            if signum == signal.SIGUSR1 and current not in (signal.SIG_DFL, None, _stop_now, self._note):
                continue  # Lightning's SLURM auto-requeue (or another tool) owns SIGUSR1
            signal.signal(signum, self._note)  # Lightning's teardown puts back the handlers from before fit

    def _note(self, signum, frame) -> None:
        if not self.training or (self.received and signum == signal.SIGINT):  # after training, or a second Ctrl-C
            trainer = self.trainer
            last = trainer.checkpoint_callback.last_model_path if trainer and trainer.checkpoint_callback else ""
            step = trainer.global_step if trainer else None
            raise RunStopped(signum, step=step, checkpoint=last or None, at_once=True)
        if not self.received:
            again = " (Ctrl-C again stops at once)" if signum == signal.SIGINT else ""
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            log.warning("%s received: stopping at the end of this training step, saving last.ckpt%s", name, again)
            self.received = int(signum)

    def _agreed(self, trainer: L.Trainer) -> int:
        """The signal any rank received (every rank calls this at the same step, so all of them agree)."""
        if trainer.world_size <= 1:
            return self.received
        flag = torch.tensor(self.received, device=trainer.strategy.root_device)
        return int(trainer.strategy.reduce(flag, reduce_op="max").item())

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        signum = self._agreed(trainer)
        if not signum:
            return
        path = last_checkpoint_path(trainer)
        # The whole training state; every rank calls it (a barrier); rank zero writes, atomically.
        trainer.save_checkpoint(path, weights_only=False)
        raise RunStopped(signum, step=trainer.global_step, max_steps=trainer.max_steps, checkpoint=str(path))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A signal during the final validation: training is done and last.ckpt holds its last step; stop before the
        # end-of-run samples.
        signum = self._agreed(trainer)
        self.training = False  # from here (samples, generation metrics) a signal stops at once
        if signum:
            last = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
            raise RunStopped(signum, step=trainer.global_step, max_steps=trainer.max_steps, checkpoint=last or None)
