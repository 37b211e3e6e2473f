"""bench/gpu.py --smoke: every part of the GPU benchmark runs end to end on CPU at tiny sizes, so device time
is never spent debugging the script. The numbers mean nothing here; the plumbing and the arithmetic do."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile

import pytest

from tests import zygote
from tests.bench.yardstick import nanogpt_anchors
from tests.e2e.conftest import ROOT


@pytest.fixture
def yardstick():
    """nanoGPT's run-nanogpt.sh folder: the side-by-side parts skip without it (a fresh clone has no ../shared)."""
    return nanogpt_anchors()


def bench(tmp_path, *args: str, anchors=None) -> tuple[dict, str]:
    """Run bench/gpu.py --smoke with results, work and out under tmp_path -> ({part: record}, console output)."""
    cmd = [sys.executable, "bench/gpu.py", *args, "--smoke", "--peak-tflops", "1"]
    cmd += ["--anchors", str(anchors)] if anchors else []
    cmd += ["--results", str(tmp_path / "results"), "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    proc = zygote.run(cmd, env=_env(), cwd=ROOT, tmp=tmp_path / "procs", timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    records = {
        p.stem.split("_", 2)[2]: json.loads(p.read_text()) for p in (tmp_path / "results").glob("gpu_cpu_*.json")
    }
    for part, record in records.items():
        assert record["smoke"] and record["slug"] == "cpu" and record["part"] == part
        assert (tmp_path / "results" / f"gpu_cpu_{part}.md").read_text().startswith(f"### {part}: cpu")
        assert (tmp_path / "out" / f"gpu_cpu_{part}.json").is_file()  # what a device call brings back
    return records, output


def _env() -> dict:
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_char_side_by_side(tmp_path, yardstick):
    records, _ = bench(tmp_path, "char", anchors=yardstick)
    nano, proj = records["char"]["nanogpt"], records["char"]["project"]
    for side in (nano, proj):
        assert side["status"] == "ok" and side["steps"] == 8
        assert side["ms_per_step"] > 0 and side["tokens_per_sec"] == pytest.approx(
            side["tokens_per_step"] * 1000 / side["ms_per_step"]
        )
        assert side["best_val"] is not None and 0 < side["time_to_target"] < side["wall"]  # smoke target: 10
    assert proj["tokens_per_step"] == nano["tokens_per_step"] == 4 * 32
    plain = records["char"]["more"]["project model, plain loop (bench/bare_loop.py)"]  # no Lightning: bare_loop.py
    assert plain["status"] == "ok" and plain["steps"] == 8 and plain["tokens_per_step"] == 4 * 32
    assert plain["tokens_per_sec"] == pytest.approx(plain["tokens_per_step"] * 1000 / plain["ms_per_step"])
    with tarfile.open(tmp_path / "out" / "gpu_cpu_bundle.tar.gz") as tar:
        names = tar.getnames()
    assert "gpu_cpu_char.md" in names and any(n.endswith("char/nanogpt_cpu.log") for n in names)
    assert "| tokens/s |" in (tmp_path / "out" / "gpu_cpu_summary.md").read_text()


def test_without_the_anchors_smoke_runs_a_stand_in_that_speaks_nanogpts_log(tmp_path):
    from bench.gpu_runs import parse_nanogpt
    from bench.harness import anchors

    assert anchors(str(tmp_path)) is None  # --anchors DIR without run-nanogpt.sh: not found
    flags = ["--max_iters=8", "--eval_interval=4", "--batch_size=4", "--block_size=32"]
    for cmd in (["bench/nanogpt_stand_in.py", *flags], ["bench/gpu.py", "--fake-nanogpt", *flags]):
        proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, timeout=120, env=_env())
        lines = [(0.01 * i, line) for i, line in enumerate(proc.stdout.splitlines())]
        out = parse_nanogpt(lines, eval_interval=4, target=10.0)
        assert out["steps"] == 8 and out["tokens_per_step"] == 128 and out["best_val"] == pytest.approx(3.45)
        assert [c["step"] for c in out["val_curve"]] == [0, 4, 8] and out["ms_per_step"] == pytest.approx(10.0)


@pytest.mark.slow
def test_speedrun(tmp_path):
    records, _ = bench(tmp_path, "speedrun")
    recipe = records["speedrun"]["variants"]["recipe"]
    assert recipe["status"] == "ok" and recipe["target_json"]["reached"] and recipe["target_json"]["step"] == 2


@pytest.mark.slow
def test_gpt2_side_by_side(tmp_path, yardstick, gpt2_bpe):
    records, _ = bench(tmp_path, "gpt2", anchors=yardstick)
    sides = records["gpt2"]["sides"]
    assert records["gpt2"]["peak_flops"] == 1e12
    for name in ("nanogpt", "project", "project model, plain loop"):
        s = sides[name]
        assert s["status"] == "ok" and s["tokens_per_sec"] > 0
        assert s["mfu"] == pytest.approx(s["tokens_per_sec"] * s["flops_per_token"] / 1e12)
    from models.gpt import GPTConfig
    from models.sizing import flops_per_token

    # nanoGPT's FLOPs counted like the project's, on its own model; the same shapes (vocabulary padded to 50304)
    nano = GPTConfig(vocab_size=50304, block_size=32, n_layer=1, n_head=2, n_embd=32, bias=False)
    assert sides["nanogpt"]["flops_per_token"] == flops_per_token(nano, 32)
    proj = GPTConfig(vocab_size=50257, block_size=32, n_layer=1, n_head=2, n_embd=32, bias=False, vocab_multiple=64)
    assert sides["project"]["flops_per_token"] == flops_per_token(proj, 32) == flops_per_token(nano, 32)


@pytest.mark.slow
def test_kernels(tmp_path):
    records, _ = bench(tmp_path, "kernels")
    attention = records["kernels"]["attention"]
    assert {(r["block"], r["model.attention"]) for r in attention} == {
        (b, a) for b in (16, 32, 64) for a in ("sdpa", "flash", "math")
    }
    for r in attention:
        if r["model.attention"] == "flash":  # no flash kernel on a CPU: said, not faked
            assert not r["ok"] and "needs a CUDA GPU" in r["error"]
        else:
            assert r["ok"] and r["ms/step"] > 0 and r["kernels"]
    assert any("softmax" in k.lower() for r in attention if r["model.attention"] == "math" for k in r["kernels"])
    memory = records["kernels"]["memory"]
    assert [r["name"] for r in memory] == ["base"] and memory[0]["peak"] > 0 and memory[0]["estimate"]["total"] > 0
    assert "largest deviation" in (tmp_path / "results" / "gpu_cpu_kernels.md").read_text()


@pytest.mark.slow
def test_translate(tmp_path):
    records, _ = bench(tmp_path, "translate")
    record = records["translate"]
    assert record["train"]["status"] == "ok" and record["train"]["steps"] == 4
    assert [c["step"] for c in record["train"]["val_curve"]] == [2, 4]
    assert all(c["elapsed"] > 0 and "val_bleu" in c for c in record["train"]["val_curve"])
    greedy, beam = record["test2016"]["greedy"], record["test2016"]["beam 2"]
    for s in (greedy, beam):
        assert s["status"] == "ok" and s["sentences"] == 16 and s["ms_per_sentence"] > 0
        assert s["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a") and s["ckpt_path"].endswith(
            "averaged.ckpt"
        )
    assert greedy["beam_size"] == 1 and beam["beam_size"] == 2 and beam["length_penalty"] == 1.0
    assert record["in_run_test"].startswith("BLEU = ")
