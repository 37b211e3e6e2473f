"""Compare finished runs: one table (Markdown + CSV) and PNG plots from their local files, optionally in W&B.

analysis/runs.py reads the runs, analysis/table.py writes the table, analysis/plots.py draws the figures.
"""

from __future__ import annotations

import os
from pathlib import Path

from analysis.ablation import write_ablation
from analysis.plots import write_plots
from analysis.runs import Run, load_runs
from analysis.scaling import budgeted, write_scaling
from analysis.table import COLUMNS, write_table
from errors import ConfigError


def log_to_wandb(
    runs: list[Run], out: Path, plots: list[Path], *, mode: str = "auto", summary: dict | None = None
) -> str:
    """Log the table and figures (and `summary` numbers, e.g. fitted exponents) to W&B: always with mode="on" (an
    offline run without credentials), with "auto" only when online. Returns what happened, in words."""
    from training.config import wandb_offline

    offline = wandb_offline()
    if mode == "off" or (mode == "auto" and offline):
        return "W&B: offline (no credentials or WANDB_MODE=offline), figures not uploaded"
    import wandb

    project = next((r.config["logger.wandb.project"] for r in runs if r.config.get("logger.wandb.project")), None)
    group = next((r.config["logger.wandb.group"] for r in runs if r.config.get("logger.wandb.group")), None)
    run = wandb.init(  # in the sweep's group: the report sits on the dashboard beside its jobs
        project=project or "tformer-lab",
        group=group,
        job_type="report",
        name=f"report-{out.parent.name}",
        dir=str(out),
        mode="offline" if offline else "online",
    )
    table = wandb.Table(columns=[k for k, _ in COLUMNS])
    for r in runs:
        table.add_data(*[r.row.get(k) for k, _ in COLUMNS])
    run.log({"report/summary": table, **{f"report/{p.stem}": wandb.Image(str(p)) for p in plots}})
    run.summary.update(summary or {})
    where = run.url if not offline else f"offline run in {Path(run.dir).parent} (upload: wandb sync)"
    run.finish()
    return f"W&B: logged to {where}"


def default_out(paths: list[str | Path]) -> Path:
    resolved = [Path(p).expanduser().resolve() for p in paths]
    base = resolved[0] if len(resolved) == 1 else Path(os.path.commonpath(resolved))
    return base / "report"


def make_report(
    paths: list[str | Path],
    out: str | Path | None = None,
    *,
    wandb_mode: str = "auto",
    fit: bool | None = None,
    params: str = "total",
    min_params: float = 0,
    bootstrap: int = 1000,
) -> dict:
    """The table and figures; with fit=True (None: when a run has budget.flops) the scaling section too."""
    runs = load_runs(paths)
    if fit and not budgeted(runs):
        raise ConfigError(
            "--fit: no run was trained to a compute budget (budget.flops); train some first: "
            "python train.py -m sweeps=isoflop (or sweeps=isoflop_smoke)"
        )
    out_dir = Path(out) if out else default_out(paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, csv_path = write_table(runs, out_dir)
    plots = list(write_plots(runs, out_dir))
    ablation = write_ablation(runs, out_dir)  # a sweeps=ablations study: mean ± std over seeds, Δ vs baseline
    if ablation is not None:
        plots.append(ablation[1])
    scaling, summary = None, None
    if fit or (fit is None and budgeted(runs)):
        scaling = write_scaling(runs, out_dir, params=params, min_params=min_params, n_boot=bootstrap)
        plots += scaling["plots"]
        summary = wandb_summary(scaling["summary"])
    wandb_note = log_to_wandb(runs, out_dir, plots, mode=wandb_mode, summary=summary)
    return {"runs": runs, "out": out_dir, "table": md, "csv": csv_path, "plots": plots, "wandb": wandb_note,
            "scaling": scaling, "ablation": ablation[0] if ablation else None}  # fmt: skip


def wandb_summary(summary: dict) -> dict:
    """The fitted exponents as flat W&B summary keys (scaling/a, scaling/a_low, ...)."""
    flat = {}
    for key in ("a", "b"):
        law = summary["isoflop"][key]
        if law:
            flat[f"scaling/isoflop_{key}"] = law["exponent"]
            if law["ci"]:
                flat[f"scaling/isoflop_{key}_low"], flat[f"scaling/isoflop_{key}_high"] = law["ci"]
    for key, value in (summary["parametric"] or {}).items():
        if isinstance(value, float):
            flat[f"scaling/parametric_{key}"] = value
    return flat
