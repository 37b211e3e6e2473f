"""Per-step values (train/loss, train/grad_norm) reach the loggers on exactly the steps Lightning writes, fresh
from that step, without being Lightning progress-bar metrics (those are read off the device after every batch:
a host sync per step on a GPU); the progress bar still shows train/loss, read when it redraws."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers.logger import Logger

from lightning_modules.base import logs_this_step
from lightning_modules.callbacks.progress import StepProgressBar
from lightning_modules.gpt import GPTLitModule

MODEL = dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
TOKENIZER = {"kind": "char", "chars": "abcdefghij\n"}


class Recorder(Logger):
    """Keeps every log_metrics call: {step: metrics}."""

    def __init__(self):
        super().__init__()
        self.rows: dict[int, dict] = {}

    name, version = "recorder", 0
    experiment = None

    def log_metrics(self, metrics, step=None):
        self.rows.setdefault(step, {}).update(metrics)

    def log_hyperparams(self, params, *args, **kwargs):
        pass


class StepLosses(L.Callback):
    """Each optimizer step's loss (from training_step's output) and what logs_this_step said before it."""

    def __init__(self):
        self.losses: list[float] = []
        self.asked: list[bool] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.asked.append(logs_this_step(trainer))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    xs = [torch.randint(0, 11, (4, 8), generator=g) for _ in range(n)]
    return [(x, torch.roll(x, -1, dims=1)) for x in xs]


def fit(steps: int, every: int, **kw) -> tuple[L.Trainer, GPTLitModule, Recorder, StepLosses]:
    torch.manual_seed(0)
    module = GPTLitModule(model=MODEL, tokenizer=TOKENIZER, optim={"warmup_steps": 0})
    recorder, losses = Recorder(), StepLosses()
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, log_every_n_steps=every, logger=recorder,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, callbacks=[losses], **kw)  # fmt: skip
    trainer.fit(module, torch.utils.data.DataLoader(batches(steps * 2), batch_size=None))
    return trainer, module, recorder, losses


def test_train_values_reach_the_logger_on_lightnings_steps_fresh_from_that_step():
    trainer, _, recorder, losses = fit(steps=10, every=3)
    logged = {step: row for step, row in recorder.rows.items() if "train/loss" in row}
    assert sorted(logged) == [2, 5, 8]  # Lightning's cadence: every 3rd step, numbered from 0
    for step, row in logged.items():
        assert row["train/loss"] == pytest.approx(losses.losses[step], rel=1e-6)
        assert row["train/grad_norm"] > 0
    # logs_this_step, asked before each optimizer step, named exactly those steps
    assert [i for i, asked in enumerate(losses.asked) if asked] == [2, 5, 8]
    # the last step's values are there for the progress bar's last line, though no logger writes them
    assert float(trainer.callback_metrics["train/loss"]) == pytest.approx(losses.losses[9], rel=1e-6)


def test_train_loss_is_no_lightning_progress_bar_metric_but_the_bar_shows_it():
    trainer, module, _, losses = fit(steps=4, every=2)
    assert "train/loss" not in trainer.progress_bar_metrics  # Lightning would .item() it after every batch
    assert list(module.progress_bar_keys) == ["train/loss"]
    shown = StepProgressBar(2, lines=True).get_metrics(trainer, module)
    assert list(shown)[0] == "train/loss" and isinstance(shown["train/loss"], float)
    assert shown["train/loss"] == pytest.approx(losses.losses[3], rel=1e-6)  # the last logged step, step 3


def test_accumulated_steps_log_the_mean_over_their_batches():
    trainer, _, recorder, losses = fit(steps=2, every=1, accumulate_grad_batches=2)
    # Lightning hands on_train_batch_end each batch's loss / accumulate_grad_batches: their sum is the mean
    assert recorder.rows[1]["train/loss"] == pytest.approx(sum(losses.losses[2:4]), rel=1e-6)
    assert recorder.rows[0]["train/loss"] == pytest.approx(sum(losses.losses[0:2]), rel=1e-6)
