"""The report's table: one row per run (sizes, parameters, losses, speed, memory), as Markdown and CSV."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from analysis.runs import Run

COLUMNS: list[tuple[str, str]] = [  # (key, header)
    ("run", "run"),
    ("preset", "preset"),
    ("status", "status"),
    ("tokenizer", "tokenizer"),
    ("batch_size", "batch"),
    ("block_size", "block"),
    ("n_embd", "n_embd"),
    ("n_head", "n_head"),
    ("n_layer", "n_layer"),
    ("params", "parameters"),
    ("steps", "steps"),
    ("best_val_loss", "best val loss"),
    ("best_val_bleu", "best val BLEU"),
    ("test_bleu", "test BLEU"),
    ("word_accuracy", "word accuracy"),
    ("tokens_per_sec", "tokens/s"),
    ("step_time", "time/step (s)"),
    ("val_time", "validation (s)"),
    ("inference_time", "inference/sample (s)"),
    ("inference_p90", "inference p90 (s)"),
    ("total_time", "total time (s)"),
    ("peak_memory_mb", "peak memory (MiB)"),
    ("estimated_memory_mb", "estimated memory (MiB)"),
    ("path", "directory"),
]


def _fmt(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if key == "params":
        return f"{int(value):,}"
    if isinstance(value, float):
        if key == "word_accuracy":
            return f"{value:.1%}"
        if key in ("tokens_per_sec", "peak_memory_mb", "estimated_memory_mb"):
            return f"{value:,.1f}"
        if key in ("best_val_bleu", "test_bleu"):
            return f"{value:.2f}"
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def write_table(runs: list[Run], out: Path) -> tuple[Path, Path]:
    md, csv_path = out / "summary.md", out / "summary.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([k for k, _ in COLUMNS])
        for run in runs:
            writer.writerow(["" if run.row.get(k) is None else run.row.get(k) for k, _ in COLUMNS])
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(k, run.row.get(k)) for k, _ in COLUMNS) + " |" for run in runs]
    ok = [r for r in runs if r.row.get("best_val_loss") is not None]
    notes = []
    if ok:
        best = min(ok, key=lambda r: r.row["best_val_loss"])
        notes.append(f"Best val loss: {best.row['best_val_loss']:.4f} ({best.label}).")
    bad = [r for r in runs if r.row["status"] != "ok"]
    for r in bad:
        notes.append(f"- {r.label}: {r.row['status']}")
    if any(r.row.get("best_val_bleu") is not None or r.row.get("test_bleu") is not None for r in runs):
        notes.append(
            "BLEU: sacreBLEU (cased, 13a) of the decoded translations; val BLEU is the best of the validations "
            "(module.val_beam_size), test BLEU the test split decoded once after training with the best checkpoint "
            "(module.beam_size). Val loss is per token of each run's own tokenizer: compare it between runs that "
            "share a tokenizer."
        )
    kinds = {r.measure.get("memory_kind") for r in runs if r.measure.get("memory_kind")}
    if "process_peak_rss" in kinds:
        notes.append(
            "Peak memory on CPU is the process' peak RSS (Python, PyTorch and the data included); on GPUs it is "
            "the CUDA allocator's peak. The estimate counts the training step's tensors only."
        )
    md.write_text("# Run report\n\n" + "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n")
    return md, csv_path
