"""estimate.py and report.py the way users run them (subprocesses)."""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest

from models import sizing
from models.gpt import GPT, GPTConfig
from models.memory import memory_estimate
from tests.e2e.conftest import TINY
from tests.figures import assert_figures


@pytest.mark.slow
def test_estimate_gpt3_with_breakdown(run_script, tmp_path):
    out = run_script("estimate.py", "model=gpt3", "--breakdown", timeout=120).output
    gpt3 = GPTConfig(vocab_size=50257, block_size=2048, n_layer=96, n_head=96, n_embd=12288, bias=True)
    total = sizing.num_params(gpt3)
    assert 174e9 < total < 176e9
    assert f"{total:,}" in out
    assert "counted on the module built on the meta device" in out
    for row in ("embedding W_E", "query W_Q", "key W_K", "value W_V", "output W_O", "MLP up W_1", "MLP down W_2"):
        assert row in out
    assert "unembedding W_U" in out
    assert not (tmp_path / "logs").exists()  # estimating writes no run directory


@pytest.mark.slow
def test_estimate_takes_train_overrides(run_script):
    out = run_script(
        "estimate.py", "model=gpt2", "data.batch_size=8", "data.block_size=1024", "trainer.precision=bf16-mixed"
    ).output
    cfg = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768, bias=True)
    assert "124,439,808" in out and sizing.num_params(cfg) == 124_439_808  # model=gpt2 is GPT-2 small, "124M"
    assert f"{sizing.flops_per_token(cfg, 1024):,}" in out
    assert "vocab 50257 (from data.tokenizer=gpt2)" in out  # model=gpt2 picks GPT-2 BPE data
    mem = memory_estimate(cfg, 8, 1024, precision="bf16-mixed", device="cpu")
    for value in (mem.weights, mem.optimizer, mem.activations, mem.total, mem.textbook):
        assert f"{value:,}" in out
    char = run_script("estimate.py", "model=gpt2", "data=shakespeare_char").output  # the command line wins
    assert "vocab 65 (from data.tokenizer=char)" in char
    # a cpu-recipe experiment composes like in train.py
    cpu = run_script("estimate.py", "experiment=shakespeare_char_cpu").output
    small = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=False)
    assert f"{sizing.num_params(small):,}" in cpu


@pytest.mark.slow
def test_estimate_counts_a_modern_gpt_as_built(run_script):
    options = dict(positions="rope", normalization="rmsnorm", qk_norm=True, activation="swiglu", n_kv_head=2,
                   tie_embeddings=False)  # fmt: skip
    out = run_script(
        "estimate.py",
        "model=gpt_nano",
        "data.block_size=32",
        *(f"model.{k}={str(v).lower()}" for k, v in options.items()),
    ).output
    cfg = GPTConfig(vocab_size=65, block_size=32, n_layer=3, n_head=4, n_embd=64, bias=False, **options)
    n = sum(p.numel() for p in GPT(cfg).parameters())  # the real module
    assert f"{n:,}" in out and "options: positions=rope, activation=swiglu, tie_embeddings=False, n_kv_head=2" in out
    assert f"{6 * (n - 65 * 64) + 12 * 3 * 32 * 64:,}" in out  # FLOPs per token: the untied embedding is a lookup


@pytest.mark.slow
def test_estimate_needs_a_vocabulary_hint_for_unknown_tokenizers(run_script):
    result = run_script("estimate.py", "data.tokenizer=mystery", check=False)
    assert result.returncode != 0
    assert "vocab_size=" in result.output
    ok = run_script("estimate.py", "data.tokenizer=mystery", "vocab_size=1000").output
    assert "vocab 1000 (from vocab_size=)" in ok


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_report_on_a_multirun_with_a_failed_job(run_script, tmp_path):
    run_script("train.py", "-m", *TINY, "model.n_layer=1,2", timeout=600)
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").glob("*")
    jobs = sorted(p for p in sweep.iterdir() if p.name.isdigit())
    assert len(jobs) == 2
    for job in jobs:
        assert (job / "measure.json").is_file() and (job / "generation.json").is_file()
    # a third job that failed before training: Hydra's files and a status.json, no metrics
    failed = sweep / "2"
    shutil.copytree(jobs[0] / ".hydra", failed / ".hydra")
    (failed / "status.json").write_text(
        json.dumps({"status": "failed", "job": 2, "error": "ValueError: model.n_embd=30 is not divisible"})
    )
    # and a fourth whose metrics file is gone
    broken = sweep / "3"
    shutil.copytree(jobs[1], broken)
    shutil.rmtree(broken / "csv")

    result = run_script("report.py", str(sweep), "--wandb", "off")
    report = sweep / "report"
    assert_figures(report)
    md = (report / "summary.md").read_text()
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in read_csv(report / "summary.csv")}
    assert set(rows) == {"0", "1", "2", "3"}
    for job in jobs:
        row = rows[job.name]
        assert row["status"] == "ok"
        metrics = read_csv(job / "csv" / "metrics.csv")
        val = [float(r["val/loss"]) for r in metrics if r.get("val/loss")]
        assert float(row["best_val_loss"]) == pytest.approx(min(val))
        summary = json.loads((job / "measure.json").read_text())
        gen = json.loads((job / "generation.json").read_text())["summary"]
        assert int(row["params"]) == summary["params"]
        assert float(row["tokens_per_sec"]) == pytest.approx(summary["tokens_per_sec"])
        assert float(row["total_time"]) == pytest.approx(summary["total_time"])
        assert float(row["peak_memory_mb"]) == pytest.approx(summary["peak_memory_mb"])
        assert float(row["estimated_memory_mb"]) == pytest.approx(summary["estimated_memory_mb"])
        assert float(row["inference_time"]) == pytest.approx(gen["time_mean"])
        assert float(row["word_accuracy"]) == pytest.approx(gen["word_accuracy"])
        assert row["n_layer"] == str(int(job.name) + 1)
    assert rows["2"]["status"].startswith("failed: ValueError: model.n_embd=30")
    assert rows["2"]["best_val_loss"] == ""
    assert rows["3"]["status"].startswith("failed") and "no csv/metrics.csv" in rows["3"]["status"]
    assert "failed: ValueError" in md and "no csv/metrics.csv" in md
    assert re.search(r"n_layer=1", md) and re.search(r"n_layer=2", md)
    assert "W&B: offline" in result.output or "not uploaded" in result.output
