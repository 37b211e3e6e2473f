"""What the benchmarks (bench/gpu.py, bench/cpu.py) need around their runs: launch a command with every output
line timestamped, read nanoGPT's log, read a train.py run directory, and the arithmetic both sides share
(ms/step, tokens/s, MFU).

Times are seconds since launch: the benchmark sets $TFORMER_LAUNCH_TIME to the moment it starts a process,
so train.py's `perf/elapsed` and `target.json` count from the same instant as the line timestamps of nanoGPT.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

# ---------------------------------------------------------------------------------------------------------
# Launching


@dataclass
class Launch:
    """A finished (or killed) process: its return code, wall time and output lines with their times."""

    name: str
    cmd: list[str]
    log: Path
    returncode: int | None = None
    timed_out: bool = False
    wall: float = 0.0  # seconds from launch to exit (or to the kill)
    lines: list[tuple[float, str]] = field(default_factory=list)  # (seconds since launch, line)

    @property
    def status(self) -> str:
        if self.timed_out:
            return f"timed out after {self.wall:.0f} s"
        return "ok" if self.returncode == 0 else f"failed (exit {self.returncode})"

    def tail(self, n: int = 25) -> str:
        return "\n".join(line for _, line in self.lines[-n:])


def launch(name: str, cmd: list[str], *, env: dict, cwd: Path, log: Path, timeout: float) -> Launch:
    """Run cmd (own process group, stdout+stderr merged), timestamping each line as it arrives; past
    `timeout` seconds the whole group is stopped (SIGTERM, then SIGKILL) and what it printed is kept."""
    log.parent.mkdir(parents=True, exist_ok=True)
    result = Launch(name, [str(c) for c in cmd], log)
    start = time.time()
    env = {**env, "TFORMER_LAUNCH_TIME": repr(start), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        result.cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        errors="replace", bufsize=1, start_new_session=True,
    )  # fmt: skip

    def read() -> None:
        with open(log, "w", encoding="utf-8") as out:
            out.write(f"# {' '.join(result.cmd)}\n")
            for line in proc.stdout:  # universal newlines: tqdm's \r updates become lines too
                t = time.time() - start
                result.lines.append((t, line.rstrip("\n")))
                out.write(f"{t:9.3f} {line}")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        result.returncode = proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        result.timed_out = True
        _stop_group(proc)
    result.wall = time.time() - start
    reader.join(timeout=10)
    return result


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


# ---------------------------------------------------------------------------------------------------------
# nanoGPT's log

ITER = re.compile(r"^iter (\d+): loss (\S+), time ([\d.]+)ms, mfu (-?[\d.]+)%")
EVAL = re.compile(r"^step (\d+): train loss (\S+), val loss (\S+)")
TOKENS = re.compile(r"tokens per iteration will be: ([\d,]+)")


def clock_ms_per_step(points: list[tuple[float, int]], boundaries: list[int]) -> float | None:
    """Median milliseconds per step between consecutive logged (time, step) points, skipping the first
    interval (compile, warm-up) and every interval that holds an evaluation (at a step in `boundaries`:
    it runs before the training step of that number)."""
    rates = []
    for (t0, s0), (t1, s1) in zip(points[1:], points[2:]):
        if s1 > s0 and not any(s0 < b <= s1 for b in boundaries):
            rates.append(1000 * (t1 - t0) / (s1 - s0))
    return median(rates) if rates else None


def parse_nanogpt(lines: list[tuple[float, str]], *, eval_interval: int, target: float) -> dict:
    """Steps, ms/step, best val and time to `target` from nanoGPT's console output (timestamped lines).

    ms_per_step: median over the log's own clock (iter lines are printed after `loss.item()`, a sync, so
    the time between two of them is real device time), training intervals only. nanoGPT's own per-step
    `time` (host time of one step, measured before that sync) is kept as ms_per_step_nanogpt.
    """
    iters, evals, tokens = [], [], None
    for t, line in lines:
        if m := ITER.match(line):
            iters.append((t, int(m[1]), float(m[2]), float(m[3])))
        elif m := EVAL.match(line):
            evals.append((t, int(m[1]), float(m[2]), float(m[3])))
        elif m := TOKENS.search(line):
            tokens = int(m[1].replace(",", ""))
    own = [ms for _, it, _, ms in iters if it > 0 and it % eval_interval != 0]
    clock = clock_ms_per_step([(t, it) for t, it, _, _ in iters], [s for _, s, _, _ in evals])
    best = min(evals, key=lambda e: e[3]) if evals else None
    hit = next((e for e in evals if e[3] <= target), None)
    return {
        "steps": iters[-1][1] if iters else 0,
        "tokens_per_step": tokens,
        "launch_to_first_step": iters[0][0] if iters else None,  # `iter 0` arrives after step 0 (and its eval)
        "ms_per_step": clock,
        "ms_per_step_nanogpt": median(own) if own else None,
        "tokens_per_sec": tokens * 1000 / clock if tokens and clock else None,
        "best_val": best[3] if best else None,
        "best_val_step": best[1] if best else None,
        "target": target,
        "target_step": hit[1] if hit else None,
        "time_to_target": hit[0] if hit else None,
        "final_val": evals[-1][3] if evals else None,
        "val_curve": [{"step": s, "val_loss": v, "train_loss": tr, "elapsed": t} for t, s, tr, v in evals],
        "last_loss": iters[-1][2] if iters else None,
    }


# ---------------------------------------------------------------------------------------------------------
# A train.py run directory


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def column(rows: list[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) of every row that holds `key`."""
    return [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def parse_project(run: Path, *, target: float | None = None, val_key: str = "val/loss") -> dict:
    """ms/step, tokens/s, the val curve with wall time since launch, best val and time to `target`, from
    <run>/csv/metrics.csv, measure.json and target.json (what train.py writes), and first_step.json where
    bench/first_step.py's callback ran."""
    rows = read_csv(run / "csv" / "metrics.csv")
    measure = read_json(run / "measure.json") or {}
    step_times = [v for _, v in column(rows, "perf/step_time")]
    steady = step_times[1:] or step_times  # the first interval holds the compile
    ms = 1000 * median(steady) if steady else None
    b, t = measure.get("batch_size"), measure.get("seq_len")
    elapsed = dict(column(rows, "perf/elapsed"))
    bleu = dict(column(rows, "val/bleu"))
    # metrics.csv puts a validation on the row of the last optimizer step's index: step + 1 steps were done
    curve = [
        {"step": s + 1, "val_loss": v, "elapsed": elapsed.get(s), **({"val_bleu": bleu[s]} if s in bleu else {})}
        for s, v in column(rows, val_key)
    ]
    best = min(curve, key=lambda c: c["val_loss"]) if curve else None
    hit = next((c for c in curve if target is not None and c["val_loss"] <= target), None)
    train_steps = [s for s, _ in column(rows, "train/loss")]
    return {
        "run_dir": str(run),
        "steps": measure.get("steps") or (max(train_steps) + 1 if train_steps else 0),
        "tokens_per_step": b * t if b and t else None,
        "ms_per_step": ms,
        "tokens_per_sec": b * t * 1000 / ms if b and t and ms else None,
        "tokens_per_sec_measure": measure.get("tokens_per_sec"),
        "mfu_measure": measure.get("mfu"),
        "flops_per_token": measure.get("flops_per_token"),
        "params": measure.get("params"),
        "launch_to_fit_start": measure.get("launch_to_fit_start"),
        "launch_to_first_step": (read_json(run / "first_step.json") or {}).get("elapsed_since_launch"),
        "peak_memory_mb": measure.get("peak_memory_mb"),
        "estimated_memory_mb": measure.get("estimated_memory_mb"),
        "best_val": best["val_loss"] if best else None,
        "best_val_step": best["step"] if best else None,
        "target": target,
        "target_step": hit["step"] if hit else None,
        "time_to_target": hit["elapsed"] if hit else None,
        "final_val": curve[-1]["val_loss"] if curve else None,
        "target_json": read_json(run / "target.json"),
        "val_curve": curve,
    }


def mfu(tokens_per_sec: float | None, flops_per_token: int | None, peak: float | None) -> float | None:
    """Model FLOPs utilisation: tokens/s x (6N + 12·L·T·C) / the device's dense peak."""
    if not tokens_per_sec or not flops_per_token or not peak:
        return None
    return tokens_per_sec * flops_per_token / peak
