"""The report's scaling section on hand-made runs trained to a budget: the points come from each run's own files,
the fits find the law that made them, the figures plot those numbers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from analysis.report import make_report
from analysis.runs import load_runs
from analysis.scaling import collect, write_scaling
from analysis.scaling_plots import SCALING_PLOTS
from errors import ConfigError
from tests.analysis.test_report import make_run
from tests.analysis.test_scaling_fit import TRUE_A, TRUE_B, sweep
from tests.wandb_records import read_records

POINTS = sweep(noise=0.004, seed=7, sizes=6, span=1.3)  # 4 budgets x 6 sizes from Chinchilla's law


def make_budget_run(root: Path, name: str, point, *, steps: int = 100, stopped_at: int | None = None,
                    failed: bool = False) -> Path:  # fmt: skip
    """A run as train.py leaves it with budget.flops: config.yaml with budget.chosen, val/loss at the end."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(f"- budget.flops={point.budget:g}\n- model.n_embd={name}\n")
    chosen = {"steps": steps, "tokens": int(point.tokens), "flops": point.budget * 0.99, "params": int(point.params),
              "non_embedding_params": int(point.params * 0.9)}  # fmt: skip
    (run / "config.yaml").write_text(
        "data:\n  batch_size: 8\n  block_size: 32\n  tokenizer: char\n"
        "model:\n  n_layer: 2\n  n_head: 2\n  n_embd: 32\n  bias: false\n  block_size: 32\n"
        f"budget:\n  flops: {point.budget}\n  chosen: {json.dumps(chosen)}\n"
    )
    (run / "csv").mkdir()
    last = steps - 1 if stopped_at is None else stopped_at
    with open(run / "csv" / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "train/loss", "val/loss"])
        w.writerow([0, last // 2, point.loss + 0.5, point.loss - 0.01])  # a lower loss midway: the fit takes the last
        w.writerow([0, last, point.loss + 0.1, point.loss])
    (run / "measure.json").write_text(json.dumps({"params": int(point.params), "total_time": 2.0, "steps": last + 1}))
    (run / "generation.json").write_text(json.dumps({"summary": {}, "samples": []}))
    if failed:
        (run / "status.json").write_text(json.dumps({"status": "failed", "error": "RuntimeError: out of memory"}))
    return run


@pytest.fixture
def budget_sweep(tmp_path) -> Path:
    sweep_dir = tmp_path / "isoflop"
    for i, point in enumerate(POINTS):
        make_budget_run(sweep_dir, str(i), point)
    make_budget_run(sweep_dir, "stopped", POINTS[0], stopped_at=40)  # a run killed midway: not at its budget
    make_budget_run(sweep_dir, "failed", POINTS[1], failed=True)
    make_run(sweep_dir, "nobudget", n_layer=1, val=[3.0, 2.5])  # a run without a budget is no point
    return sweep_dir


def test_jobs_of_two_multiruns_get_labels_of_their_own(tmp_path):
    """Two halves of a sweep, each multirun numbering its jobs from 0: one report, no label twice."""
    for half, points in (
        ("isoflop_2026-12-04_14-53-58_aaa111", POINTS[:3]),
        ("isoflop_2026-12-04_14-53-59_bbb222", POINTS[3:6]),
    ):
        for i, point in enumerate(points):
            make_budget_run(tmp_path / half, str(i), point)
    runs = load_runs([tmp_path / "isoflop_2026-12-04_14-53-58_aaa111", tmp_path / "isoflop_2026-12-04_14-53-59_bbb222"])
    labels = [run.label for run in runs]
    assert len(set(labels)) == 6
    assert labels[0].startswith("aaa111/0: ") and labels[3].startswith("bbb222/0: ")


def test_points_come_from_each_runs_config_and_last_val_loss(budget_sweep):
    data = collect(load_runs([budget_sweep]))
    assert len(data.points) == len(POINTS)
    by_run = {run.path.name: p for p, run in zip(data.points, data.runs)}
    assert by_run["3"].label == f"3: flops={POINTS[3].budget:g} n_embd=3"  # the run's overrides
    for i, truth in enumerate(POINTS):
        point = by_run[str(i)]
        assert (point.budget, point.params, point.tokens) == (truth.budget, int(truth.params), int(truth.tokens))
        assert point.loss == pytest.approx(truth.loss)  # the final val loss, not the lower one midway
    why = {run.path.name: reason for run, reason in data.excluded}
    assert why == {"stopped": "stopped at step 41 of the budget's 100", "failed": "failed: RuntimeError: out of memory"}
    non_embedding = collect(load_runs([budget_sweep]), params="non_embedding")
    assert [p.params for p in non_embedding.points] == [int(t.params * 0.9) for t in POINTS]
    least = int(POINTS[3].params)  # as the config holds it
    small = collect(load_runs([budget_sweep]), min_params=least)
    assert len(small.points) == sum(int(p.params) >= least for p in POINTS) == 19
    with pytest.raises(ConfigError, match=r"--params='all': use one of total, non_embedding"):
        collect([], params="all")


def test_report_adds_the_scaling_fit_for_budget_runs(budget_sweep, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    result = make_report([budget_sweep], wandb_mode="on", bootstrap=200)  # fit=None: runs with budgets ask for it
    scaling, out = result["scaling"], budget_sweep / "report"
    fits = json.loads((out / "scaling.json").read_text())
    for key, truth in (("a", TRUE_A), ("b", TRUE_B)):
        law = fits["isoflop"][key]
        assert law["ci"][0] <= truth <= law["ci"][1] and law["budgets"] == 4
    assert fits["parametric"]["ci"]["alpha"][0] <= 0.34 <= fits["parametric"]["ci"]["alpha"][1]
    md = (out / "scaling.md").read_text()
    assert f"**N_opt ∝ C^{fits['isoflop']['a']['exponent']:.3f}**" in md and "(Chinchilla, approach 2: 0.49)" in md
    assert "- left out: flops=1e+18 n_embd=stopped: stopped at step 41 of the budget's 100" in md
    with open(out / "scaling.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(POINTS) and {float(r["final_val_loss"]) for r in rows} == {p.loss for p in POINTS}
    for path in scaling["plots"]:  # each figure: its size, and not blank
        with Image.open(path) as image:
            width, height = SCALING_PLOTS[path.name][1]
            assert image.size == (round(width * image.info["dpi"][0]), round(height * image.info["dpi"][1]))
            assert len(image.convert("RGB").getcolors(1 << 20)) > 100
    # the figures and the exponents went to the offline W&B report run
    images = {p.name.split("_")[0] for p in (out / "wandb").glob("offline-run-*/files/media/images/report/*.png")}
    assert {"isoflop", "scaling", "parametric"} <= images
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    summary = {i.key: json.loads(i.value_json) for r in read_records(run_file) if r.HasField("summary")
               for i in r.summary.update}  # fmt: skip
    assert summary["scaling/isoflop_a"] == pytest.approx(fits["isoflop"]["a"]["exponent"])


def test_fit_only_where_asked_or_budgets_exist(budget_sweep, tmp_path):
    assert make_report([budget_sweep], wandb_mode="off", fit=False)["scaling"] is None
    plain = tmp_path / "plain"
    make_run(plain, "0", n_layer=1, val=[3.0, 2.5])
    assert make_report([plain], wandb_mode="off")["scaling"] is None
    with pytest.raises(ConfigError, match=r"--fit: no run was trained to a compute budget \(budget.flops\)"):
        make_report([plain], wandb_mode="off", fit=True)


def test_each_scaling_figure_plots_the_fitted_numbers(budget_sweep, tmp_path):
    result = write_scaling(load_runs([budget_sweep]), tmp_path, n_boot=50)
    from analysis.scaling_plots import write_scaling_plots

    drawn = {p.name: d for p, d in write_scaling_plots(result["data"], result["isoflop"], result["parametric"],
                                                         tmp_path).items()}  # fmt: skip
    first = f"C = {POINTS[0].budget:.3g}"
    assert drawn["isoflop.png"][first] == [(int(p.params), int(p.tokens), p.loss) for p in POINTS[:6]]
    (n, d, loss, interior) = drawn["isoflop.png"][f"minimum {first}"][0]
    assert interior and (n, d, loss) == pytest.approx(result["isoflop"].parabolas[0].optimum)
    law = result["isoflop"].params
    assert drawn["scaling_laws.png"]["N_opt law"] == [law.exponent, law.coefficient]
    assert [c for c, _ in drawn["scaling_laws.png"]["N_opt"]] == sorted({p.budget for p in POINTS})
    fitted = {p.label: pred for p, pred in result["parametric"].residuals}
    assert [row[2] for row in drawn["parametric_fit.png"][first]] == [
        fitted[p.label] for p in result["data"].points[:6]
    ]


def test_report_cli_refuses_a_bootstrap_of_nothing(budget_sweep, capsys):
    from report import main

    with pytest.raises(SystemExit) as exit_:
        main([str(budget_sweep), "--bootstrap", "0", "--wandb", "off"])
    assert exit_.value.code == 1
    assert "Error: --bootstrap=0 must be a positive number of resamples (e.g. 1000)" in capsys.readouterr().err
