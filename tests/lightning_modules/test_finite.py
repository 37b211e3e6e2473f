"""A diverged run stops, never overwrites (lightning_modules/callbacks/finite.py): a non-finite loss ends the run
with one line naming the step, the likely causes and the last good checkpoint, and best.ckpt / last.ckpt keep
their finite weights. The same through train.py: tests/e2e/test_trust.py::test_a_diverged_run_stops_in_one_line."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_modules.callbacks.finite import DivergedError, StopOnNonFinite
from lightning_modules.gpt import GPTLitModule

MODEL = dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
TOKENIZER = {"kind": "char", "chars": "abcdefghij\n"}


class Poison(L.Callback):
    """From one step on, the weights hold a NaN (as a learning rate far too high leaves them)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("nan")


def fit(folder: Path, *callbacks, log_every: int = 50, max_steps: int = 12) -> L.Trainer:
    torch.manual_seed(0)
    module = GPTLitModule(model=MODEL, tokenizer=TOKENIZER, optim={"lr": 1e-2, "warmup_steps": 1})
    checkpoints = ModelCheckpoint(dirpath=folder, filename="best", monitor="val/loss", save_last=True)
    trainer = L.Trainer(accelerator="cpu", max_steps=max_steps, val_check_interval=4, limit_val_batches=1,
                        log_every_n_steps=log_every, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[checkpoints, StopOnNonFinite(), *callbacks])  # fmt: skip
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 11, (64, 2, 8), generator=g)
    loader = torch.utils.data.DataLoader([(xi, torch.roll(xi, -1, 1)) for xi in x], batch_size=None)
    trainer.fit(module, loader, loader)
    return trainer


def finite(path: Path) -> bool:
    state = torch.load(path, weights_only=True)["state_dict"]
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_a_diverged_run_stops_before_it_overwrites_a_checkpoint(tmp_path):
    with pytest.raises(DivergedError) as err:
        fit(tmp_path, Poison(5))  # the loss of step 6 is nan; the next check is the validation at step 8
    message = str(err.value)
    assert message.startswith("training diverged: train/loss is not finite (nan or inf) at step 6 of 12")
    assert "optim.lr=0.01: lower it, or raise optim.warmup_steps" in message
    assert "(trainer.precision=32-true cannot overflow as float16 does)" in message
    assert f"the last good checkpoint is {tmp_path / 'last.ckpt'} (step 4)" in message
    for name in ("best.ckpt", "last.ckpt"):
        assert finite(tmp_path / name) and torch.load(tmp_path / name, weights_only=True)["global_step"] == 4


def test_it_stops_at_the_step_when_every_step_is_logged(tmp_path):
    with pytest.raises(DivergedError, match="at step 6 of 12") as err:
        fit(tmp_path, Poison(5), log_every=1)
    assert err.traceback[-1].name in ("check", "on_train_batch_end")


def test_a_divergence_before_any_checkpoint_says_so(tmp_path):
    with pytest.raises(DivergedError, match="at step 1 of 12.*; no checkpoint was saved before it"):
        fit(tmp_path, Poison(0))
    assert not list(tmp_path.iterdir())


def test_no_checkpoint_with_non_finite_weights_is_written(tmp_path):
    trainer = fit(tmp_path, max_steps=4)
    before = (tmp_path / "last.ckpt").read_bytes()
    with torch.no_grad():
        next(trainer.lightning_module.parameters()).view(-1)[0] = float("inf")
    with pytest.raises(DivergedError, match=r"the weights are not finite \(model\.[\w.]+( and others)?\) at step 4"):
        trainer.save_checkpoint(tmp_path / "last.ckpt")
    assert (tmp_path / "last.ckpt").read_bytes() == before


@pytest.mark.parametrize(
    "precision, cause",
    [
        ("16-mixed", "or float16 overflowing (trainer.precision=16-mixed: use bf16-mixed or 32-true)"),
        ("bf16-mixed", "or bfloat16's coarse rounding (trainer.precision=bf16-mixed: try 32-true)"),
        ("32-true", " (trainer.precision=32-true cannot overflow as float16 does)"),
    ],
)
def test_the_message_names_the_precision_that_may_be_the_cause(precision, cause):
    from types import SimpleNamespace

    trainer = SimpleNamespace(precision=precision, checkpoint_callback=None, ckpt_path=None, max_steps=100)
    module = SimpleNamespace(optim_cfg=SimpleNamespace(lr=6e-4))
    message = StopOnNonFinite().message(trainer, module, "train/loss is not finite (nan or inf) at step 7")
    start = "training diverged: train/loss is not finite (nan or inf) at step 7 of 100, likely a learning rate too "
    assert message.startswith(start + "high (optim.lr=0.0006: lower it, or raise optim.warmup_steps)")
    assert cause in message and message.endswith("no checkpoint was saved before it")
