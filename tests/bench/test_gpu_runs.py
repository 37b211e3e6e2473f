"""bench/gpu_runs.py: launching with timestamps, reading nanoGPT's log and a train.py run, the shared arithmetic."""

from __future__ import annotations

import json
import sys
import time

import pytest

from bench.gpu_runs import clock_ms_per_step, launch, mfu, parse_nanogpt, parse_project


def nanogpt_log(step_ms: float = 10.0, eval_s: float = 3.0) -> list[tuple[float, str]]:
    """A synthetic nanoGPT run: 20 s start-up and compile, iter lines every 10 steps, an evaluation
    (eval_s seconds) every 250 steps; val loss falls 0.05 per evaluation from 1.70."""
    lines, t = [(0.5, "tokens per iteration will be: 16,384")], 20.0
    for it in range(0, 1001):
        if it % 250 == 0:
            t += eval_s
            lines.append((t, f"step {it}: train loss {1.6 - it / 5000:.4f}, val loss {1.70 - it / 5000:.4f}"))
        t += step_ms / 1000
        if it % 10 == 0:
            lines.append((t, f"iter {it}: loss 1.5000, time {step_ms * 0.9:.2f}ms, mfu 5.00%"))
    return lines


def test_nanogpt_log_gives_clock_time_per_step_without_evaluations():
    out = parse_nanogpt(nanogpt_log(), eval_interval=250, target=1.62)
    assert out["steps"] == 1000 and out["tokens_per_step"] == 16384
    assert out["ms_per_step"] == pytest.approx(10.0)  # the 3 s evaluations are not in it
    assert out["ms_per_step_nanogpt"] == pytest.approx(9.0)  # nanoGPT's own host-side figure, kept apart
    assert out["tokens_per_sec"] == pytest.approx(16384 / 0.010)
    assert (out["best_val"], out["best_val_step"]) == (pytest.approx(1.50), 1000)
    # the first val <= 1.62 is at step 500 (1.60): its line's time since launch
    expected = next(t for t, line in nanogpt_log() if line.startswith("step 500:"))
    assert out["target_step"] == 500 and out["time_to_target"] == pytest.approx(expected)
    assert [c["step"] for c in out["val_curve"]] == [0, 250, 500, 750, 1000]


def test_clock_skips_the_first_interval_and_those_holding_an_evaluation():
    # steps 0, 10, 20, 30, 40: the first interval (compile) is slow, (20, 30] holds an evaluation at 30
    points = [(0.0, 0), (5.0, 10), (5.1, 20), (9.2, 30), (9.3, 40)]
    assert clock_ms_per_step(points, boundaries=[0, 30]) == pytest.approx(10.0)
    assert clock_ms_per_step(points[:2], boundaries=[]) is None


def test_nothing_parsed_from_an_empty_or_broken_log():
    out = parse_nanogpt([(1.0, "Traceback (most recent call last):")], eval_interval=250, target=1.47)
    assert out["steps"] == 0 and out["ms_per_step"] is None and out["best_val"] is None
    assert out["time_to_target"] is None and out["tokens_per_sec"] is None


def write_run(run, rows: list[dict], measure: dict) -> None:
    (run / "csv").mkdir(parents=True)
    keys = sorted({k for r in rows for k in r})
    text = ",".join(keys) + "\n" + "".join(",".join(str(r.get(k, "")) for k in keys) + "\n" for r in rows)
    (run / "csv" / "metrics.csv").write_text(text)
    (run / "measure.json").write_text(json.dumps(measure))


def test_project_run_gives_step_time_tokens_and_time_to_target(tmp_path):
    rows = [{"step": 9, "perf/step_time": 2.5}]  # the first interval holds the compile
    rows += [{"step": s, "perf/step_time": v} for s, v in zip(range(19, 100, 20), (0.011, 0.010, 0.012, 0.010, 0.010))]
    rows += [{"step": 49, "val/loss": 1.55}, {"step": 49, "perf/elapsed": 31.5, "perf/val_time": 0.1}]
    rows += [{"step": 99, "val/loss": 1.45}, {"step": 99, "perf/elapsed": 33.0, "perf/val_time": 0.1}]
    write_run(tmp_path, rows, {"batch_size": 64, "seq_len": 256, "steps": 100, "flops_per_token": 7, "mfu": None})
    out = parse_project(tmp_path, target=1.47)
    assert out["ms_per_step"] == pytest.approx(10.0)  # median of the steady intervals, not the 2.5 s compile
    assert out["tokens_per_sec"] == pytest.approx(64 * 256 / 0.010)
    assert [c["step"] for c in out["val_curve"]] == [50, 100]  # steps done at each validation
    assert out["best_val"] == 1.45 and out["best_val_step"] == 100
    assert out["target_step"] == 100 and out["time_to_target"] == 33.0
    assert parse_project(tmp_path, target=1.0)["time_to_target"] is None


def test_mfu_is_tokens_times_flops_over_peak():
    assert mfu(400_000, 855_166_464, 989.4e12) == pytest.approx(400_000 * 855_166_464 / 989.4e12)
    assert mfu(None, 1, 1) is None and mfu(1, 1, None) is None


def test_launch_timestamps_lines_and_stops_a_run_past_its_time(tmp_path):
    code = "import os, sys, time; print(os.environ['TFORMER_LAUNCH_TIME']); print('ready', flush=True); time.sleep(60)"
    before = time.time()
    result = launch("sleeper", [sys.executable, "-c", code], env={}, cwd=tmp_path, log=tmp_path / "s.log", timeout=3)
    assert result.timed_out and result.status.startswith("timed out") and result.wall < 30
    launched, ready = result.lines[0][1], result.lines[1]
    assert before <= float(launched) <= before + 1  # train.py's clock starts where the benchmark's does
    assert ready[1] == "ready" and 0 <= ready[0] < 3
    assert "ready" in (tmp_path / "s.log").read_text()
    ok = launch("ok", [sys.executable, "-c", "print('x')"], env={}, cwd=tmp_path, log=tmp_path / "o.log", timeout=60)
    assert ok.status == "ok" and [line for _, line in ok.lines] == ["x"]
