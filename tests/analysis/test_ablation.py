"""analysis/ablation.py on hand-made ablation runs: groups, mean ± std over seeds, differences paired by seed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from analysis.ablation import ablation_groups, ablation_table, paired_difference, plot_differences
from analysis.report import make_report
from analysis.runs import load_runs

# (budget, variant) -> best val loss of seeds 1, 2, 3
LOSSES = {
    ("steps", "baseline"): [2.00, 2.10, 2.30],
    ("steps", "rope"): [1.90, 2.05, 2.15],  # paired differences -0.10, -0.05, -0.15
    ("steps", "gqa"): [2.05, 2.20, 2.30],  # +0.05, +0.10, 0.00
    ("time", "baseline"): [1.95, 2.00],
    ("time", "rope"): [1.85, 1.96],  # -0.10, -0.04 (seed 3 missing: pairs over the seeds both ran)
}


def make_ablation_run(root: Path, name: str, budget: str, variant: str, seed: int, loss: float) -> Path:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(
        f"- ablations.budget={budget}\n- ablation={variant}\n- seed={seed}\n"
    )
    (run / ".hydra" / "hydra.yaml").write_text(
        f"hydra:\n  runtime:\n    choices:\n      ablation: {variant}\n      experiment: shakespeare_char_cpu\n"
    )
    (run / "config.yaml").write_text(
        f"seed: {seed}\nablations:\n  budget: {budget}\ndata:\n  batch_size: 32\n  block_size: 64\n  tokenizer: char\n"
        "model:\n  n_layer: 4\n  n_head: 4\n  n_embd: 128\n"
    )
    (run / "csv").mkdir()
    with open(run / "csv" / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "val/loss"])
        w.writerows([[100, loss + 0.5], [200, loss]])
    params = 800_000 if variant != "gqa" else 740_000
    (run / "measure.json").write_text(
        json.dumps({"params": params, "tokens_per_sec": 10_000.0 + seed, "total_time": 150.0 + seed, "steps": 200})
    )
    return run


@pytest.fixture
def study(tmp_path) -> Path:
    sweep, job = tmp_path / "ablations", 0
    for (budget, variant), losses in LOSSES.items():
        for seed, loss in enumerate(losses, start=1):
            make_ablation_run(sweep, str(job), budget, variant, seed, loss)
            job += 1
    return sweep


def test_runs_are_grouped_by_budget_and_variant_baseline_first(study):
    groups = ablation_groups(load_runs([study]))
    assert [(g.budget, g.variant, len(g.runs)) for g in groups] == [
        ("steps", "baseline", 3), ("steps", "gqa", 3), ("steps", "rope", 3),
        ("time", "baseline", 2), ("time", "rope", 2),
    ]  # fmt: skip


def test_differences_are_paired_by_seed(study):
    groups = {(g.budget, g.variant): g for g in ablation_groups(load_runs([study]))}
    mean, std, n = paired_difference(groups["steps", "rope"], groups["steps", "baseline"])
    assert (mean, n) == (pytest.approx(-0.10), 3) and std == pytest.approx(0.05)  # -0.10, -0.05, -0.15
    mean, std, n = paired_difference(groups["time", "rope"], groups["time", "baseline"])
    assert (mean, n) == (pytest.approx(-0.07), 2) and std == pytest.approx(0.0424264, rel=1e-4)
    assert paired_difference(groups["steps", "gqa"], None) == (None, None, 0)


def test_the_table_shows_mean_std_and_the_paired_difference(study):
    table = ablation_table(ablation_groups(load_runs([study])))
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in table.splitlines()[2:]}
    assert "| 3 | 2.1333 ± 0.1528 | — | 10,002 ± 1 | 800,000 | 200 ± 0 | 152.0 ± 1.0 |" in rows["steps", "baseline"]
    assert "-0.1000 ± 0.0500 (n=3)" in rows["steps", "rope"]
    assert "+0.0500 ± 0.0500 (n=3)" in rows["steps", "gqa"] and "740,000" in rows["steps", "gqa"]
    assert "-0.0700 ± 0.0424 (n=2)" in rows["time", "rope"]


def test_the_plot_draws_each_variants_difference(study, tmp_path):
    drawn = plot_differences(ablation_groups(load_runs([study])), tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 5_000
    assert [(v, round(m, 4), round(s, 4)) for v, m, s in drawn["steps"]] == [("gqa", 0.05, 0.05), ("rope", -0.1, 0.05)]
    assert [v for v, _, _ in drawn["time"]] == ["rope"]


def test_the_report_adds_the_ablation_section(study, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    result = make_report([study], wandb_mode="off")
    assert result["ablation"].read_text().startswith("# Ablation study")
    assert (result["out"] / "ablation.png") in result["plots"]


def test_a_report_of_other_runs_has_no_ablation_section(tmp_path):
    run = make_ablation_run(tmp_path, "r", "steps", "baseline", 1, 2.0)
    (run / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      ablation: null\n")
    (run / "config.yaml").write_text("seed: 1\ndata:\n  batch_size: 32\nmodel:\n  n_layer: 4\n")
    assert make_report([run], wandb_mode="off")["ablation"] is None


def test_a_job_stopped_midway_is_left_out_and_named(study, monkeypatch):
    stopped = make_ablation_run(study, "99", "steps", "rope", 4, 1.0)  # would pull rope's mean far down
    (stopped / "measure.json").unlink()
    killed = make_ablation_run(study, "98", "steps", "gqa", 4, 1.0)
    (killed / "status.json").write_text(json.dumps({"status": "terminated", "job": 98}))
    completed = make_ablation_run(study, "97", "steps", "gqa", 5, 2.2)
    (completed / "status.json").write_text(json.dumps({"status": "completed", "job": 97}))
    groups = {(g.budget, g.variant): g for g in ablation_groups(load_runs([study]))}
    assert sorted(r.path.name for r in groups["steps", "rope"].runs) == ["3", "4", "5"]
    assert sorted(r.path.name for r in groups["steps", "gqa"].runs) == ["6", "7", "8", "97"]
    monkeypatch.setenv("WANDB_MODE", "offline")
    note = make_report([study], wandb_mode="off")["ablation"].read_text()
    assert f"{stopped} (no measure.json)" in note and f"{killed} (terminated)" in note and "/97 " not in note


def test_runs_without_generation_metrics_are_complete(study):
    run = study / "0"
    (run / "config.yaml").write_text(
        (run / "config.yaml").read_text()
        + "callbacks:\n  generation:\n    _target_: lightning_modules.callbacks.generation.GenerationMetrics\n"
        "    num_samples: 0\n"
    )
    assert load_runs([run])[0].row["status"] == "ok"
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("num_samples: 0", "num_samples: 50"))
    assert load_runs([run])[0].row["status"] == "incomplete: no generation.json"
