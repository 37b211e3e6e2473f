"""Checkpoints are data, never code (training/safe_load.py): every checkpoint the project writes loads with
weights_only, and a checkpoint whose pickle would run code is refused by every loader before any of it runs.
The entry points as users run them: tests/e2e/test_trust.py."""

from __future__ import annotations

import pathlib
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from lightning_modules.callbacks.averaging import AverageCheckpoints
from lightning_modules.gpt import GPTLitModule
from training import safe_load
from training.averaging import average_checkpoints
from training.checkpoint import load_module, read_checkpoint
from training.checkpoint_io import AtomicCheckpointIO, use_atomic_checkpoints
from training.guards import guard_callbacks

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"
MODEL = dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
TOKENIZER = {"kind": "char", "chars": "abcdefghij\n"}


class Marker:
    """Unpickled with full pickle, this creates a file: what a malicious checkpoint's payload stands for."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def malicious(good: Path, out: Path, marker: Path) -> Path:
    """A real checkpoint with the payload hidden among its callback states."""
    ckpt = torch.load(good, weights_only=True)
    ckpt["callbacks"] = {**ckpt.get("callbacks", {}), "x": Marker(marker)}
    torch.save(ckpt, out)
    return out


@pytest.fixture(autouse=True)
def untrusted():
    safe_load.trust_checkpoints(False)
    yield
    safe_load.trust_checkpoints(False)


def batches(n: int = 4):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 11, (n, 2, 8), generator=g)
    return [(xi, torch.roll(xi, -1, 1)) for xi in x]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """best.ckpt, last.ckpt and averaged.ckpt as a training run writes them (every callback that adds state)."""
    folder = tmp_path_factory.mktemp("written")
    torch.manual_seed(0)
    module = GPTLitModule(model=MODEL, tokenizer=TOKENIZER, optim={"lr": 1e-2, "warmup_steps": 1})
    callbacks = [
        ModelCheckpoint(dirpath=folder, filename="best", monitor="val/loss", save_last=True),
        EarlyStopping(monitor="val/loss", patience=5),
        AverageCheckpoints(dirpath=str(folder), last_n=2),
        *guard_callbacks(),
    ]
    trainer = L.Trainer(accelerator="cpu", max_steps=4, val_check_interval=2, logger=False, callbacks=callbacks,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    use_atomic_checkpoints(trainer)
    loader = torch.utils.data.DataLoader(batches(), batch_size=None)
    trainer.fit(module, loader, loader)
    return folder


def test_every_checkpoint_the_project_writes_is_data(written):
    files = [written / n for n in ("best.ckpt", "last.ckpt", "averaged.ckpt")] + sorted(FIXTURES.glob("*.ckpt"))
    for path in files:
        assert safe_load.unsafe_globals(path) == [], path
        assert isinstance(safe_load.load(path), dict)
    assert read_checkpoint(written / "last.ckpt")["lr_schedulers"][0]["lr_lambdas"][0]["kind"] == "cosine"


def test_a_checkpoint_that_runs_code_is_refused_by_every_loader(written, tmp_path):
    marker = tmp_path / "ran"
    evil = malicious(written / "last.ckpt", tmp_path / "evil.ckpt", marker)
    message = rf"ckpt_path={evil} was refused: it names code \(.*pathlib.Path.*\).* trust_checkpoint=true loads it"
    with pytest.raises(safe_load.UntrustedCheckpointError, match=message):
        safe_load.load(evil)
    with pytest.raises(safe_load.UntrustedCheckpointError, match=message):
        load_module(evil, "gpt")  # sample.py, translate.py, eval.py
    with pytest.raises(safe_load.UntrustedCheckpointError, match="trust_checkpoint=true"):
        AtomicCheckpointIO().load_checkpoint(evil)  # Lightning's resume
    with pytest.raises(safe_load.UntrustedCheckpointError, match=r"checkpoint=.*--trust-checkpoint loads it"):
        average_checkpoints([written / "best.ckpt", evil])  # average.py
    module = GPTLitModule(model=MODEL, tokenizer=TOKENIZER)
    trainer = L.Trainer(accelerator="cpu", max_steps=6, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    use_atomic_checkpoints(trainer)
    with pytest.raises(safe_load.UntrustedCheckpointError):
        trainer.fit(module, torch.utils.data.DataLoader(batches(), batch_size=None), ckpt_path=evil)
    assert not marker.exists()


def test_an_old_format_pickle_that_runs_code_is_refused_too(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"state_dict": {}, "x": Marker(marker)}, tmp_path / "old.ckpt", _use_new_zipfile_serialization=False)
    with pytest.raises(safe_load.UntrustedCheckpointError, match=r"old.ckpt was refused: it names code \(getattr\)"):
        safe_load.load(tmp_path / "old.ckpt")
    assert not marker.exists()


def test_trust_checkpoint_loads_it_and_says_what_it_risks(written, tmp_path, caplog):
    marker = tmp_path / "ran"
    evil = malicious(written / "last.ckpt", tmp_path / "evil.ckpt", marker)
    safe_load.trust_checkpoints(True)
    assert "trust_checkpoint=true" in caplog.text and "runs that code" in caplog.text
    assert load_module(evil, "gpt").config.n_embd == 8
    assert marker.exists()  # what the opt-in means: the file's code ran
    assert "loaded with full pickle" in caplog.text


def test_a_damaged_file_is_not_called_code(tmp_path):
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk.ckpt is not a readable PyTorch checkpoint \(damaged") as err:
        read_checkpoint(tmp_path / "junk.ckpt")
    assert "weights_only" not in str(err.value)
