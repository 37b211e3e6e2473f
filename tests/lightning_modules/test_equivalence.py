"""Training maths that must not depend on how a run is cut up: a resumed run equals the uninterrupted one (AdamW
and optim.name=muon), and gradient accumulation over k batches of B equals one batch of kB. DDP and FSDP
(subprocesses): tests/e2e/test_distributed_equivalence.py.
"""

from __future__ import annotations

import csv
import logging
import os
import signal

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from datamodules.shakespeare import ShakespeareDataModule
from lightning_modules.callbacks.lr_monitor import StepLearningRateMonitor
from lightning_modules.gpt import GPTLitModule

STEPS = 6  # the uninterrupted run; the interrupted one dies after the validation (and last.ckpt) at step 3
OPTIM = {"lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 2, "grad_clip": 0.5}
MUON = {**OPTIM, "name": "muon", "muon_lr": 0.05, "muon_weight_decay": 0.01}


class Record(L.Callback):
    """Per optimizer step: the LR it used (of the first group; of every group) and the windows it trained on."""

    def __init__(self):
        self.lr: dict[int, float] = {}
        self.lrs: dict[int, list[float]] = {}
        self.windows: dict[int, torch.Tensor] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs[trainer.global_step] = [g["lr"] for g in trainer.optimizers[0].param_groups]
        self.lr[trainer.global_step] = self.lrs[trainer.global_step][0]
        self.windows[trainer.global_step] = batch[0].clone()


class MachineLost(RuntimeError):
    pass


class Die(L.Callback):
    """The machine goes away at the start of a step."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise MachineLost(f"gone at step {self.step}")  # no checkpoint is written on the way out


def datamodule(corpora, tmp_path) -> ShakespeareDataModule:
    dm = ShakespeareDataModule(str(corpora), str(tmp_path / "cache"), batch_size=4, block_size=16, download=False)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def gpt(dm, dropout: float = 0.1, optim: dict = OPTIM) -> GPTLitModule:
    torch.manual_seed(0)
    model = dict(vocab_size=dm.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=dropout, bias=False)
    return GPTLitModule(model=model, tokenizer=dm.tokenizer.state_dict(), optim=optim)


def fit(
    corpora, run_dir, *, max_steps=STEPS, ckpt_path=None, callbacks=(), optim: dict = OPTIM
) -> tuple[GPTLitModule, L.Trainer, Record]:
    """A run as train.py configures it: validation every 3 steps, last.ckpt at each validation."""
    L.seed_everything(0)
    dm = datamodule(corpora, run_dir)
    module, record = gpt(dm, optim=optim), Record()
    checkpoint = ModelCheckpoint(run_dir / "checkpoints", filename="best", monitor="val/loss", save_last=True)
    trainer = L.Trainer(
        accelerator="cpu", max_steps=max_steps, val_check_interval=3, check_val_every_n_epoch=None,
        limit_val_batches=2, num_sanity_val_steps=0, logger=False, callbacks=[record, checkpoint, *callbacks],
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return module, trainer, record


@pytest.fixture(scope="module")
def uninterrupted(corpora, tmp_path_factory):
    return fit(corpora, tmp_path_factory.mktemp("uninterrupted"))


def died_at_step_3(corpora, run, optim: dict = OPTIM):
    """last.ckpt of a run (max_steps=STEPS) that died at the start of step 3."""
    with pytest.raises(MachineLost):
        fit(corpora, run, callbacks=[Die(3)], optim=optim)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 3
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def last_ckpt(corpora, tmp_path_factory):
    return died_at_step_3(corpora, tmp_path_factory.mktemp("interrupted"))


def test_resume_equals_the_uninterrupted_run(uninterrupted, last_ckpt, corpora, tmp_path):
    module, trainer, record = uninterrupted
    resumed_module, resumed, resumed_record = fit(corpora, tmp_path, ckpt_path=last_ckpt)
    assert sorted(resumed_record.lr) == [3, 4, 5]
    for step in (3, 4, 5):  # the random stream continues where it stopped, it does not restart
        assert torch.equal(resumed_record.windows[step], record.windows[step]), step
        assert resumed_record.lr[step] == pytest.approx(record.lr[step], rel=1e-12), step
    # dropout 0.1: the same masks too (the checkpoint carries the RNG state), so the same weights
    for (name, a), (_, b) in zip(module.state_dict().items(), resumed_module.state_dict().items(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=lambda m, name=name: f"{name}: {m}")
    state, resumed_state = trainer.optimizers[0].state_dict(), resumed.optimizers[0].state_dict()
    assert state["param_groups"] == resumed_state["param_groups"]
    for i, s in state["state"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(resumed_state["state"][i][key], s[key], rtol=1e-6, atol=1e-9)
    scheduler = resumed.lr_scheduler_configs[0].scheduler
    assert scheduler.state_dict() == trainer.lr_scheduler_configs[0].scheduler.state_dict()


def test_muon_resume_equals_the_uninterrupted_run_exactly(corpora, tmp_path_factory):
    """optim.name=muon: the same weights and optimizer state, bit for bit, and every group's LR at every step."""
    module, trainer, record = fit(corpora, tmp_path_factory.mktemp("muon"), optim=MUON)
    last = died_at_step_3(corpora, tmp_path_factory.mktemp("muon_interrupted"), optim=MUON)
    resumed_module, resumed, resumed_record = fit(corpora, tmp_path_factory.mktemp("muon_resumed"), ckpt_path=last,
                                                  optim=MUON)  # fmt: skip
    assert sorted(resumed_record.lrs) == [3, 4, 5]
    for step in (3, 4, 5):
        assert torch.equal(resumed_record.windows[step], record.windows[step]), step
        assert resumed_record.lrs[step] == record.lrs[step], step  # [muon, decay, no_decay]
        assert record.lrs[step][0] / record.lrs[step][1] == pytest.approx(MUON["muon_lr"] / MUON["lr"]), step
    for (name, a), (_, b) in zip(module.state_dict().items(), resumed_module.state_dict().items(), strict=True):
        assert torch.equal(b, a), name
    state, resumed_state = trainer.optimizers[0].state_dict(), resumed.optimizers[0].state_dict()
    assert [g["name"] for g in state["param_groups"]] == ["muon", "decay", "no_decay"]
    assert state["param_groups"] == resumed_state["param_groups"]
    assert {k for s in state["state"].values() for k in s} == {"momentum_buffer", "step", "exp_avg", "exp_avg_sq"}
    for i, s in state["state"].items():
        assert s.keys() == resumed_state["state"][i].keys(), i
        assert all(torch.equal(resumed_state["state"][i][k], v) for k, v in s.items()), i
    scheduler = resumed.lr_scheduler_configs[0].scheduler
    assert scheduler.state_dict() == trainer.lr_scheduler_configs[0].scheduler.state_dict()


class Terminate(L.Callback):
    """A scheduler's SIGTERM arrives during a step (training/signals.StopOnSignal saves last.ckpt at its end)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_run_stopped_by_sigterm_resumes_as_the_uninterrupted_run(uninterrupted, corpora, tmp_path):
    from training.signals import RunStopped, StopOnSignal

    module, _, record = uninterrupted
    with pytest.raises(RunStopped) as stopped:
        fit(corpora, tmp_path / "a", callbacks=[StopOnSignal(), Terminate(4)])  # between the validations at 3 and 6
    assert stopped.value.step == 5 and torch.load(stopped.value.checkpoint, weights_only=True)["global_step"] == 5
    resumed_module, _, resumed_record = fit(corpora, tmp_path / "b", ckpt_path=stopped.value.checkpoint)
    assert sorted(resumed_record.lr) == [5]
    assert torch.equal(resumed_record.windows[5], record.windows[5])
    for (name, a), (_, b) in zip(module.state_dict().items(), resumed_module.state_dict().items(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=lambda m, name=name: f"{name}: {m}")


def test_a_longer_max_steps_on_resume_keeps_the_schedule(uninterrupted, last_ckpt, corpora, tmp_path, caplog):
    """Decided: a resume continues the LR schedule the run started with (saved in the checkpoint); a new
    trainer.max_steps only moves the stop. Extra steps of a cosine schedule run at min_lr."""
    _, _, record = uninterrupted
    with caplog.at_level(logging.WARNING, logger="tformer"):
        _, trainer, longer = fit(corpora, tmp_path, max_steps=STEPS + 3, ckpt_path=last_ckpt)
    assert trainer.global_step == STEPS + 3
    assert [longer.lr[s] for s in (3, 4, 5)] == pytest.approx([record.lr[s] for s in (3, 4, 5)], rel=1e-12)
    assert [longer.lr[s] for s in (6, 7, 8)] == pytest.approx([OPTIM["min_lr"]] * 3)
    assert "the LR schedule continues as the run started it (cosine, warmup 2, decay over 6 steps" in caplog.text
    assert "decay over 9 steps" in caplog.text


# ---------------------------------------------------------------------------------------------------------
# gradient accumulation


def fixed_batches(dm, n: int, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    tokens = torch.from_numpy(dm.train_tokens[:5000].astype("int64"))
    starts = torch.randint(0, len(tokens) - 17, (n, batch_size), generator=g)
    windows = tokens[starts[..., None] + torch.arange(17)]  # (n, B, T + 1)
    return [(w[:, :-1], w[:, 1:]) for w in windows]


def fit_batches(dm, batches, tmp_path, **trainer_kw) -> tuple[GPTLitModule, list[dict]]:
    L.seed_everything(0)
    module = gpt(dm, dropout=0.0)
    trainer = L.Trainer(
        accelerator="cpu", max_steps=3, logger=CSVLogger(tmp_path, "csv", ""), log_every_n_steps=1,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        callbacks=[StepLearningRateMonitor(logging_interval="step")], **trainer_kw,
    )  # fmt: skip
    trainer.fit(module, torch.utils.data.DataLoader(batches, batch_size=None))
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        return module, list(csv.DictReader(f))


def per_step(rows: list[dict], key: str) -> dict[int, float]:
    return {int(r["step"]): float(r[key]) for r in rows if r.get(key)}


def test_accumulating_k_batches_of_b_equals_one_batch_of_kb(corpora, tmp_path):
    dm = datamodule(corpora, tmp_path)
    small = fixed_batches(dm, 6, 2)
    big = [(torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])) for a, b in zip(small[::2], small[1::2])]
    accumulated, acc_rows = fit_batches(dm, small, tmp_path / "acc", accumulate_grad_batches=2)
    reference, ref_rows = fit_batches(dm, big, tmp_path / "big")
    for (name, a), (_, b) in zip(reference.state_dict().items(), accumulated.state_dict().items(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
    # one logged value per optimizer step, counted in optimizer steps, equal to the big batch's
    for key in ("train/loss", "train/lr/decay", "train/lr/no_decay", "train/grad_norm"):
        ref, acc = per_step(ref_rows, key), per_step(acc_rows, key)
        assert sorted(acc) == sorted(ref) == [0, 1, 2], key
        assert sum(1 for r in acc_rows if r.get(key)) == 3, key
        assert [acc[s] for s in range(3)] == pytest.approx([ref[s] for s in range(3)], rel=1e-5), key
