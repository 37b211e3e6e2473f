"""sweeps=isoflop: every job of the CPU sweep is a valid model with a run its budget can pay for; the smoke sweep
trains each job to exactly its budget, and report.py --fit turns it into the scaling section."""

from __future__ import annotations

import csv
import itertools
import json
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from lightning_modules.optim import OptimConfig, lr_lambda
from tests.e2e.procs import finish, run_train, start, train_env
from tests.e2e.test_sweeps import compose
from training.budget import plan_budget


def jobs(name: str) -> list:
    """Every job's composed config of a named sweep (its grid of hydra.sweeper.params)."""
    cfg = compose([f"sweeps={name}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    grid = itertools.product(*[str(v).split(",") for v in params.values()])
    return [compose([f"sweeps={name}", *(f"{k}={v}" for k, v in zip(params, values))]) for values in grid]


@pytest.mark.parametrize(
    "name, sizes, batch, accelerator, flops",
    [("isoflop", 6, (32, 64), "cpu", 5.3e13), ("isoflop_gpu", 5, (128, 256), "gpu", 7.2e16)],
)
def test_every_job_of_the_sweep_fits_its_budget(name, sizes, batch, accelerator, flops):
    from hydra.utils import instantiate

    total, by_budget = 0.0, {}
    for cfg in jobs(name):
        model = instantiate(cfg.model, _convert_="all", vocab_size=65)  # Tiny Shakespeare's characters; validated
        plan = plan_budget(cfg.budget.flops, model, batch_size=cfg.data.batch_size, block_size=cfg.data.block_size)
        assert plan.steps >= 100 and cfg.optim.warmup_steps < plan.steps // 5  # a schedule, not just a warmup
        assert (cfg.data.batch_size, cfg.data.block_size, cfg.trainer.accelerator) == (*batch, accelerator)
        assert 12 <= model.n_embd / model.n_layer <= 96  # width and depth together
        total += plan.flops
        by_budget.setdefault(cfg.budget.flops, []).append((cfg.isoflop.size, plan.params))
    assert len(by_budget) == 4 and all(len(s) == sizes for s in by_budget.values())
    for window in by_budget.values():  # s1, s2, ... run from the smallest model to the largest
        assert [n for _, n in sorted(window)] == sorted(n for _, n in window)
    assert total == pytest.approx(flops, rel=0.01)  # as the sweep file says (its time estimate rests on it)


@pytest.mark.slow
def test_isoflop_smoke_sweep_trains_to_budget_and_report_fits(tmp_path):
    code, out = run_train(["sweeps=isoflop_smoke", "logger=csv"], tmp_path=tmp_path, name="isoflop", timeout=400)
    assert code == 0, out[-4000:]
    (sweep,) = sorted((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert sweep.name.startswith("isoflop_smoke_")
    runs = sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    assert len(runs) == 6
    for run in runs:
        config = yaml.safe_load((run / "config.yaml").read_text())
        budget, chosen = config["budget"]["flops"], config["budget"]["chosen"]
        assert config["trainer"]["max_steps"] == chosen["steps"]  # the budget set the run's length...
        assert chosen["tokens"] == chosen["steps"] * 8 * 32 == chosen["steps"] * chosen["tokens_per_step"]
        assert budget - chosen["flops_per_token"] * 256 < chosen["flops"] <= budget  # ...spending all of it
        measure = json.loads((run / "measure.json").read_text())
        assert measure["steps"] == chosen["steps"] and measure["flops_per_token"] == chosen["flops_per_token"]
        assert measure["params"] == chosen["params"]
        with open(run / "csv" / "metrics.csv", newline="") as f:
            lrs = [float(r["train/lr/decay"]) for r in csv.DictReader(f) if r.get("train/lr/decay")]
        # ...and the LR schedule spans it (warmup, then cosine down to optim.min_lr at the budget's last step)
        schedule = lr_lambda(OptimConfig(**config["optim"]), chosen["steps"])
        assert lrs == pytest.approx([config["optim"]["lr"] * schedule(step) for step in range(chosen["steps"])])
    assert "replaces trainer.max_steps=4 of the config" in out  # said in the log, once per job
    assert out.count("budget.flops=") == 6

    report = start([sys.executable, "report.py", str(sweep), "--fit", "--wandb", "off", "--bootstrap", "100"],
                   env=train_env(tmp_path), log=tmp_path / "report.log")  # fmt: skip
    (code,) = finish([report], timeout=300)
    printed = (tmp_path / "report.log").read_text()
    assert code == 0, printed[-4000:]
    out_dir = sweep / "report"
    assert "# Scaling fit" in printed and "## IsoFLOP minima (approach 2)" in printed
    for name in ("scaling.md", "scaling.csv", "scaling.json", "isoflop.png", "scaling_laws.png", "parametric_fit.png"):
        assert (out_dir / name).is_file() and str(out_dir / name) in printed
    with open(out_dir / "scaling.csv", newline="") as f:
        rows = {r["path"]: r for r in csv.DictReader(f)}
    assert len(rows) == 6
    for run in runs:  # each point is its run's budget, parameters, tokens and last val loss
        config, row = OmegaConf.load(run / "config.yaml"), rows[str(run)]
        with open(run / "csv" / "metrics.csv", newline="") as f:
            last = [float(r["val/loss"]) for r in csv.DictReader(f) if r.get("val/loss")][-1]
        assert float(row["budget"]) == config.budget.flops and int(row["params"]) == config.budget.chosen.params
        assert int(row["tokens"]) == config.budget.chosen.tokens and float(row["final_val_loss"]) == last
    fits = json.loads((out_dir / "scaling.json").read_text())
    assert fits["params_counted"] == "total" and len(fits["isoflop"]["minima"]) == 2
    # two budgets of three tiny models, a few dozen steps each: exponents, or the reason there are none
    assert (fits["isoflop"]["a"] is not None) or "a power law needs 2" in fits["isoflop"]["why_not"]
    assert fits["parametric"] is not None and len(fits["chinchilla"]) == 7
