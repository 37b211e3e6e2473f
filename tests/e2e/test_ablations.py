"""sweeps=ablations end to end: the smoke study at both budgets, then report.py's ablation section."""

from __future__ import annotations

import csv
import sys

import pytest
import yaml

from tests.e2e.procs import finish, run_train, start, train_env


@pytest.mark.slow
def test_ablation_smoke_at_both_budgets_then_the_report(tmp_path):
    args = ["sweeps=ablations_smoke", "logger=csv", "ablations.budget=steps,time", "ablation=baseline,rope", "seed=1,2",
            "ablations.time=00:00:00:02"]  # fmt: skip
    code, out = run_train(args, tmp_path=tmp_path, name="ablations", timeout=400)
    assert code == 0, out[-4000:]
    (sweep,) = sorted((tmp_path / "logs" / "train" / "multiruns").iterdir())
    jobs = {}
    for job in sorted(p for p in sweep.iterdir() if p.name.isdigit()):
        config = yaml.safe_load((job / "config.yaml").read_text())
        with open(job / "csv" / "metrics.csv", newline="") as f:
            lrs = [float(r["train/lr/decay"]) for r in csv.DictReader(f) if r.get("train/lr/decay")]
        jobs[config["ablations"]["budget"], config["model"]["positions"], config["seed"]] = (config, lrs)
    assert sorted(jobs) == sorted((b, p, s) for b in ("steps", "time") for p in ("learned", "rope") for s in (1, 2))
    for (budget, _, _), (config, lrs) in jobs.items():
        if budget == "steps":
            assert config["trainer"]["max_time"] is None and len(lrs) == 4
        else:  # the clock ends the run, not max_steps, and the cosine decayed on the way (ScheduleFollowsClock)
            assert config["trainer"]["max_time"] == "00:00:00:02" and config["trainer"]["max_steps"] == 10**9
            assert len(lrs) > 10 and lrs[-1] < 0.5 * max(lrs)

    report = start([sys.executable, "report.py", str(sweep), "--wandb", "off"], env=train_env(tmp_path),
                   log=tmp_path / "report.log")  # fmt: skip
    (code,) = finish([report], timeout=300)
    log = (tmp_path / "report.log").read_text()
    assert code == 0, log[-4000:]
    table = (sweep / "report" / "ablation.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith(("| steps", "| time"))]
    assert [r.split("|")[1:4] for r in rows] == [[f" {b} ", f" {v} ", " 2 "] for b in ("steps", "time")
                                                  for v in ("baseline", "rope")]  # fmt: skip
    assert all("(n=2)" in r for r in rows if "rope" in r)
    assert (sweep / "report" / "ablation.png").stat().st_size > 5_000 and "# Ablation study" in log
