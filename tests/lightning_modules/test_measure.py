"""Measure and GenerationMetrics callbacks on tiny in-process fits, and their helper functions."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

import lightning_modules.callbacks.measure as measure
from datamodules.shakespeare import ShakespeareDataModule
from lightning_modules.callbacks.generation import GenerationMetrics
from lightning_modules.callbacks.measure import Measure
from lightning_modules.gpt import GPTLitModule
from lightning_modules.hardware import peak_flops
from lightning_modules.metrics import complete_words, word_accuracy, words
from models import sizing
from models.gpt import GPTConfig
from models.memory import memory_estimate

# ---------------------------------------------------------------------------------------------------------
# word accuracy


def test_words_are_lowercased_letter_runs():
    assert words("To be, or not to be: that's the QUESTION!\n2B") == [
        "to", "be", "or", "not", "to", "be", "that's", "the", "question", "b",
    ]  # fmt: skip


def test_word_accuracy_on_hand_made_text():
    vocab = set(words("To be, or not to be, that is the question: Whether 'tis nobler in the mind"))
    generated = words("To bee or nit to be, the questoin WHETHER mind")
    # to, or, to, be, the, whether, mind are known; bee, nit, questoin are not
    assert word_accuracy(generated, vocab) == pytest.approx(7 / 10)
    assert word_accuracy([], vocab) is None


def test_complete_words_drops_a_cut_off_last_word():
    assert complete_words("the king is de") == ["the", "king", "is"]
    assert complete_words("the king is dead.") == ["the", "king", "is", "dead"]
    assert complete_words("the king is dead\n") == ["the", "king", "is", "dead"]


# ---------------------------------------------------------------------------------------------------------
# device peaks


def test_no_peak_on_cpu():
    assert peak_flops(torch.device("cpu"), torch.bfloat16) is None


@pytest.mark.parametrize(
    "name,dtype,expected",
    [
        ("NVIDIA H200", torch.bfloat16, 989.4e12),  # not in Lightning's table: the fallback
        ("NVIDIA H200 NVL", torch.bfloat16, 835.5e12),
        ("NVIDIA GH200 480GB", torch.bfloat16, 989.4e12),
        ("NVIDIA H200", torch.float32, 494.7e12),  # float32 matmuls run as TF32 at precision "high"
        ("NVIDIA H100 80GB HBM3", torch.bfloat16, 989.4e12),  # Lightning's table
        ("NVIDIA H100 NVL", torch.bfloat16, 835.5e12),  # dense, not Lightning's sparse 1978.8
        ("NVIDIA A100-SXM4-80GB", torch.bfloat16, 312e12),
        ("Some Future GPU", torch.bfloat16, None),
    ],
)
def test_peak_flops_table(monkeypatch, name, dtype, expected):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
    monkeypatch.setattr("lightning.fabric.accelerators.cuda._is_ampere_or_later", lambda device=None: True)
    assert peak_flops(torch.device("cuda", 0), dtype) == expected


# ---------------------------------------------------------------------------------------------------------
# tiny fits

MODEL = dict(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0, bias=False)


class Holdings(L.Callback):
    """The bytes of weights, gradients and AdamW states the trainer holds right after each step."""

    def __init__(self):
        self.held: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        params = list(pl_module.parameters())
        state = [v for s in trainer.optimizers[0].state.values() for v in s.values() if torch.is_tensor(v)]
        self.held.append(
            {
                "weights": sum(p.numel() * p.element_size() for p in params),
                "gradients": sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None),
                "optimizer": sum(v.numel() * v.element_size() for v in state),
                "batch": tuple(batch[0].shape),
            }
        )


def fit(tmp_path, corpora, cache_dir, callbacks, steps=4):
    dm = ShakespeareDataModule(data_dir=str(corpora), cache_dir=str(cache_dir), batch_size=4, block_size=16)
    dm.prepare_data()
    dm.setup("fit")
    model = {**MODEL, "vocab_size": dm.vocab_size}
    module = GPTLitModule(model=model, tokenizer=dm.tokenizer.state_dict(), optim={"warmup_steps": 1})
    trainer = L.Trainer(
        accelerator="cpu", max_steps=steps, val_check_interval=2, check_val_every_n_epoch=None,
        limit_val_batches=2, num_sanity_val_steps=0, log_every_n_steps=1, logger=CSVLogger(tmp_path, "csv", ""),
        callbacks=callbacks, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return trainer, module, rows


def column(rows: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) not in (None, "")]


@pytest.fixture(scope="module")
def cpu_fit(tmp_path_factory, corpora, cache_dir):
    tmp = tmp_path_factory.mktemp("measure")
    holdings = Holdings()
    gen = GenerationMetrics(str(tmp), num_samples=3, num_words=6, seed=0)
    trainer, module, rows = fit(tmp, corpora, cache_dir, [Measure(str(tmp)), gen, holdings])
    return tmp, trainer, module, rows, holdings


def test_perf_metrics_reach_the_metrics_file(cpu_fit):
    tmp, trainer, module, rows, _ = cpu_fit
    for key in ("tokens_per_sec", "step_time", "flops_per_sec", "peak_memory_mb", "estimated_memory_mb"):
        assert column(rows, f"perf/{key}"), key
        assert all(v > 0 for v in column(rows, f"perf/{key}"))
    assert len(column(rows, "perf/val_time")) == 2  # one per validation pass (steps 2 and 4)
    # wall time since launch with every validation, on the rows (steps) of the val/loss it belongs to
    elapsed = {r["step"]: float(r["perf/elapsed"]) for r in rows if r.get("perf/elapsed")}
    val_steps = [r["step"] for r in rows if r.get("val/loss")]
    assert sorted(elapsed) == sorted(val_steps) and len(val_steps) == 2
    first, second = (elapsed[s] for s in sorted(elapsed, key=int))
    assert 0 < first < second
    assert len(column(rows, "perf/total_time")) == 1
    assert "perf/mfu" not in rows[0]  # no device peak on a CPU: no MFU at all
    # flops/s is tokens/s x the model's FLOPs per token (6N + 12·L·T·C) over the same interval
    fpt = sizing.flops_per_token(module.config, 16)
    for r in rows:
        if r.get("perf/flops_per_sec"):
            assert float(r["perf/flops_per_sec"]) == pytest.approx(float(r["perf/tokens_per_sec"]) * fpt, rel=1e-6)
    summary = json.loads((tmp / "measure.json").read_text())
    assert summary["mfu"] is None and summary["peak_flops"] is None
    assert summary["params"] == sum(p.numel() for p in module.model.parameters())
    assert summary["flops_per_token"] == fpt
    assert summary["steps"] == 4 and summary["val_passes"] == 2
    assert 0 < summary["launch_to_fit_start"] < summary["history"]["elapsed"][0] <= summary["launch_to_train_end"]
    # the first optimizer step ends after fit starts and before the first validation (after step 2)
    assert summary["launch_to_fit_start"] < summary["launch_to_first_step"] < summary["history"]["elapsed"][0]
    assert summary["memory_kind"] == "process_peak_rss"
    assert summary["peak_memory_mb"] >= summary["memory_at_start_mb"] > 0
    est = memory_estimate(module.config, 4, 16, precision="32-true", device="cpu")
    assert summary["estimated_memory"] == est.to_dict()


def test_estimate_matches_the_tensors_the_trainer_holds(cpu_fit):
    _, _, module, _, holdings = cpu_fit
    est = memory_estimate(module.config, 4, 16, precision="32-true", device="cpu")
    after_step = holdings.held[-1]
    assert after_step["batch"] == (4, 16)
    assert after_step["weights"] == est.weights
    assert after_step["gradients"] == est.gradients
    assert after_step["optimizer"] == est.optimizer


def test_generation_metrics(cpu_fit):
    tmp, _, _, rows, _ = cpu_fit
    result = json.loads((tmp / "generation.json").read_text())
    samples = result["samples"]
    assert len(samples) == 3
    assert all(s["words"] == 6 for s in samples)
    assert all(len(complete_words(s["text"])) >= 6 for s in samples)  # the texts are kept for inspection
    summary = result["summary"]
    times = sorted(s["time"] for s in samples)
    assert summary["time_p50"] == pytest.approx(times[1])
    assert times[0] <= summary["time_p50"] <= summary["time_p90"] <= times[-1]
    assert summary["word_accuracy"] == pytest.approx(sum(s["hits"] for s in samples) / 18)
    for s in samples:
        assert s["word_accuracy"] == pytest.approx(s["hits"] / s["words"])
    logged = {k: column(rows, f"gen/{k}") for k in ("time_mean", "time_p50", "time_p90", "word_accuracy", "words")}
    assert logged["time_p90"] == [pytest.approx(summary["time_p90"])]
    assert logged["words"] == [6.0]


def test_mfu_against_a_faked_device_peak(tmp_path, corpora, cache_dir, monkeypatch):
    monkeypatch.setattr(measure, "peak_flops", lambda device, dtype: 2.5e9)
    _, _, rows = fit(tmp_path, corpora, cache_dir, [Measure(str(tmp_path))], steps=3)
    mfu = [(float(r["perf/mfu"]), float(r["perf/flops_per_sec"])) for r in rows if r.get("perf/mfu")]
    assert len(mfu) == 3
    for value, flops in mfu:
        assert value == pytest.approx(flops / 2.5e9)
    summary = json.loads((tmp_path / "measure.json").read_text())
    assert summary["peak_flops"] == 2.5e9
    assert summary["mfu"] == pytest.approx(sorted(v for v, _ in mfu)[1])


def test_generation_arguments_are_checked():
    with pytest.raises(ValueError, match="callbacks.generation"):
        GenerationMetrics("out", num_words=0)


def test_memory_estimate_is_skipped_for_non_gpt_modules():
    class Other(L.LightningModule):
        config = None

    m = Measure("out")
    m.precision = "32-true"
    m.device = torch.device("cpu")
    assert m._memory_estimate(Other(), 2, 8) is None
    cfg = GPTConfig(**MODEL)
    module = GPTLitModule(model=asdict(cfg), tokenizer={"kind": "char", "chars": "ab"})
    assert m._memory_estimate(module, 2, 8)["total"] > 0
