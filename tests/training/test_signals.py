"""A stop signal is a checkpoint, never a success (training/signals.py), in-process: the loop stops at the end of
the step with last.ckpt saved, exits 128 + the signal, and a resumed run continues from that step. Real processes
(train.py, a multirun, DDP ranks): tests/e2e/test_signals.py."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_modules.gpt import GPTLitModule
from training.checkpoint_io import use_atomic_checkpoints
from training.signals import RunStopped, StopOnSignal, stop_on_signals
from training.sweep import SUMMARY_FILE, run_job

MODEL = dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
TOKENIZER = {"kind": "char", "chars": "abcdefghij\n"}


class SendAtStep(L.Callback):
    """Sends signals to this process at the start of one training step (as a scheduler would, mid-step)."""

    def __init__(self, step: int, *signums: int):
        self.step, self.signums = step, signums

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            for signum in self.signums:
                os.kill(os.getpid(), signum)


def loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 11, (64, 2, 8), generator=g)
    return torch.utils.data.DataLoader([(xi, torch.roll(xi, -1, 1)) for xi in x], batch_size=None)


def fit(folder: Path, *callbacks, max_steps: int = 20, ckpt_path=None) -> L.Trainer:
    torch.manual_seed(0)
    module = GPTLitModule(model=MODEL, tokenizer=TOKENIZER, optim={"lr": 1e-2, "warmup_steps": 1})
    checkpoints = ModelCheckpoint(dirpath=folder, filename="best", monitor="val/loss", save_last=True)
    trainer = L.Trainer(accelerator="cpu", max_steps=max_steps, val_check_interval=4, limit_val_batches=1,
                        logger=False, callbacks=[checkpoints, StopOnSignal(), *callbacks], enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    use_atomic_checkpoints(trainer)
    trainer.fit(module, loader(), loader(), ckpt_path=ckpt_path)
    return trainer


@pytest.fixture(autouse=True)
def default_handlers():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)}
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGUSR1, 138), (signal.SIGINT, 130)])
def test_a_signal_saves_last_ckpt_at_the_current_step_and_exits_non_zero(tmp_path, signum, code):
    with pytest.raises(RunStopped) as stopped:
        fit(tmp_path, SendAtStep(5, signum))
    stop = stopped.value
    assert stop.code == code and stop.step == 6  # the step that was running when the signal came, finished
    assert stop.checkpoint == str(tmp_path / "last.ckpt")
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 6  # not the validation's 4
    assert f"Resume with: python train.py ckpt_path={tmp_path / 'last.ckpt'}" in stop.describe()
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_resumed_run_continues_from_the_signals_step(tmp_path):
    with pytest.raises(RunStopped):
        fit(tmp_path / "a", SendAtStep(5, signal.SIGTERM))
    resumed = fit(tmp_path / "b", max_steps=10, ckpt_path=tmp_path / "a" / "last.ckpt")
    assert resumed.global_step == 10
    optimizer_steps = {int(s["step"]) for s in resumed.optimizers[0].state_dict()["state"].values()}
    assert optimizer_steps == {10}  # AdamW's state went on from step 6: 4 more steps, not 10 from scratch


def test_a_second_ctrl_c_stops_at_once_naming_the_last_checkpoint(tmp_path):
    with pytest.raises(RunStopped) as stopped:
        fit(tmp_path, SendAtStep(5, signal.SIGINT, signal.SIGINT))
    assert stopped.value.at_once and stopped.value.code == 130
    assert stopped.value.checkpoint == str(tmp_path / "last.ckpt") and stopped.value.step == 5
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 4  # the validation's: kept
    assert "kept (nothing saved after it)" in stopped.value.describe()


def test_outside_the_loop_a_signal_stops_at_once():
    with pytest.raises(RunStopped) as stopped, stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0.5)  # the handler runs in the main thread, between two bytecodes
    assert stopped.value.code == 143 and "before any checkpoint: nothing to resume" in stopped.value.describe()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # put back


def test_a_handler_someone_else_installed_for_sigusr1_is_left_alone(tmp_path):
    seen = []
    signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append(signum))  # e.g. Lightning's SLURM requeue
    fit(tmp_path, SendAtStep(5, signal.SIGUSR1), max_steps=8)  # the run is not stopped
    assert seen == [signal.SIGUSR1]


def test_a_multirun_job_stopped_by_a_signal_is_terminated_with_the_summary_written(hydra_job):
    cfg = hydra_job(["model.n_layer=2"], job_num=0)

    def train(cfg):
        raise RunStopped(signal.SIGTERM, step=50, max_steps=63, checkpoint="/run/checkpoints/last.ckpt")

    with pytest.raises(RunStopped) as stopped:
        run_job(cfg, train)
    assert stopped.value.code == 143
    status = json.loads(Path(cfg.paths.output_dir, "status.json").read_text())
    assert status["status"] == "terminated" and status["signal"] == "SIGTERM" and status["step"] == 50
    assert status["error"].startswith("Stopped by SIGTERM at step 50 of 63: /run/checkpoints/last.ckpt saved")
    summary = Path(cfg.paths.output_dir).parent / SUMMARY_FILE
    assert summary.read_text().splitlines()[1].startswith("0,terminated,,model.n_layer=2")


class HandlerProbe(L.Callback):
    """The SIGUSR1 handler in place while training."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.sigusr1 = signal.getsignal(signal.SIGUSR1)


def test_lightnings_slurm_requeue_keeps_sigusr1(tmp_path, monkeypatch):
    from lightning.fabric.plugins.environments import SLURMEnvironment

    for key, value in {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "7", "SLURM_PROCID": "0",
                       "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "node1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    probe = HandlerProbe()
    torch.manual_seed(0)
    module = GPTLitModule(model=MODEL, tokenizer=TOKENIZER)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=2, logger=False, enable_checkpointing=False,
                        callbacks=[StopOnSignal(), probe], plugins=[SLURMEnvironment(auto_requeue=True)],
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    with stop_on_signals():
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # left for Lightning to register its requeue
        trainer.fit(module, loader())
    handlers = getattr(probe.sigusr1, "signal_handlers", [])
    assert any(getattr(h, "__name__", "") == "_slurm_sigusr_handler_fn" for h in handlers), probe.sigusr1


def test_lightnings_own_sigterm_exit_is_not_a_success(hydra_job):
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    cfg = hydra_job([], multirun=False)

    def train(cfg):
        raise SIGTERMException  # what Lightning raises (exit status 0) if its handler ever sees SIGTERM first

    with pytest.raises(RunStopped) as stopped:
        run_job(cfg, train)
    assert stopped.value.code == 143
