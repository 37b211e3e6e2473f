"""The report's scaling section: runs trained to a compute budget (budget.flops) -> IsoFLOP minima, N_opt(C) and
D_opt(C) with their exponents, the parametric L(N, D), as scaling.md, scaling.csv, scaling.json and PNGs.

Each run gives one point: C = its budget.flops, N = its parameters (total, or without embeddings), D = the tokens
it trained on (budget.chosen.tokens), L = its final val/loss (the end of the budget's schedule).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from analysis.runs import Run
from analysis.scaling_fit import CHINCHILLA, CI, IsoFlopFit, Parametric, Point, fit_isoflop, fit_parametric
from errors import ConfigError

PARAMS = {  # --params: which count is N, in words
    "total": ("params", "all parameters (embeddings included, the tied head once), as Hoffmann et al. count them"),
    "non_embedding": ("non_embedding_params", "parameters without the token and position embeddings (Kaplan et al.)"),
}


@dataclass
class ScalingData:
    points: list[Point]
    runs: list[Run]  # the run of each point, in the same order
    excluded: list[tuple[Run, str]] = field(default_factory=list)  # runs with a budget left out, and why


def budgeted(runs: list[Run]) -> list[Run]:
    return [r for r in runs if r.config.get("budget.flops") is not None]


def final_loss(run: Run) -> tuple[int, float] | None:
    """(step, value) of the run's last val/loss."""
    series = sorted(run.series("val/loss"))
    return series[-1] if series else None


def collect(runs: list[Run], *, params: str = "total", min_params: float = 0) -> ScalingData:
    """The points of the runs trained to a budget; a run that failed, stopped early or is too small is left out."""
    if params not in PARAMS:
        raise ConfigError(f"--params={params!r}: use one of {', '.join(PARAMS)}")
    key = f"budget.chosen.{PARAMS[params][0]}"
    data = ScalingData(points=[], runs=[])
    for run in budgeted(runs):
        cfg, last = run.config, final_loss(run)
        steps, n = cfg.get("budget.chosen.steps"), cfg.get(key)
        if run.row.get("status", "").startswith("failed") or last is None:
            why = run.row.get("status") or "no val/loss"
        elif steps is None or n is None:
            why = "no budget.chosen in config.yaml (trained before budgets were recorded?)"
        elif last[0] < int(steps) - 1:
            why = f"stopped at step {last[0] + 1} of the budget's {steps}"
        elif n < min_params:
            why = f"{n:,} parameters, below --min-params={min_params:g}"
        else:
            point = Point(float(cfg["budget.flops"]), float(n), float(cfg["budget.chosen.tokens"]), last[1], run.label)
            data.points.append(point)
            data.runs.append(run)
            continue
        data.excluded.append((run, why))
    return data


def _g(x: float | None, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def _ci(ci: tuple[float, float] | None, digits: int = 3) -> str:
    return f"[{_g(ci[0], digits)}, {_g(ci[1], digits)}]" if ci else "—"


def _count(n: float) -> str:
    return f"{n / 1e6:.3f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def isoflop_lines(fit: IsoFlopFit, data: ScalingData, n_boot: int) -> list[str]:
    lines = ["## IsoFLOP minima (approach 2)", "",
             "| budget C (FLOPs) | runs | N trained | N_opt | D_opt | tokens per parameter | loss at N_opt | used |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    by_c = {p.budget: p for p in fit.parabolas}
    for c in sorted({p.budget for p in data.points}):
        pts = [p for p in data.points if p.budget == c]
        sizes = f"{_count(min(p.params for p in pts))}–{_count(max(p.params for p in pts))}"
        parabola = by_c.get(c)
        if parabola is None or parabola.optimum is None:
            why = "fewer than 3 sizes" if parabola is None else "no minimum (the parabola opens down)"
            lines.append(f"| {c:.3g} | {len(pts)} | {sizes} | — | — | — | — | no: {why} |")
            continue
        n, d, loss = parabola.optimum
        used = "yes" if parabola.interior else "no: the minimum lies outside the sizes trained"
        lines.append(f"| {c:.3g} | {len(pts)} | {sizes} | {_count(n)} | {_count(d)} | {d / n:.1f} | {loss:.4f} | "
                     f"{used} |")  # fmt: skip
    lines.append("")
    if fit.params is None:
        lines.append(f"No N_opt(C) and D_opt(C): {fit.why_not}.")
        return lines
    boot = (f"95% bootstrap interval over runs (resampled within each budget): {fit.bootstrap} of {n_boot} resamples "
            f"gave both exponents")  # fmt: skip
    lines += [
        f"- **N_opt ∝ C^{fit.params.exponent:.3f}** {_ci(fit.params.ci)} (Chinchilla, approach 2: {CHINCHILLA['a']})",
        f"- **D_opt ∝ C^{fit.tokens.exponent:.3f}** {_ci(fit.tokens.ci)} (Chinchilla: {CHINCHILLA['b']})",
        f"- from {fit.params.budgets} budgets; {boot}.",
    ]
    if fit.bootstrap < 0.5 * n_boot:
        lines.append("- Fewer than half of the resamples had two interior minima: the interval is not to be trusted.")
    return lines


def parametric_lines(fit: Parametric | None, data: ScalingData) -> list[str]:
    lines = ["## Parametric fit L(N, D) = E + A/N^α + B/D^β (approach 3)", ""]
    if fit is None:
        budgets = len({p.budget for p in data.points})
        return [*lines, f"Not fitted: it needs at least 6 runs from 2 budgets (five parameters; within one budget D "
                        f"is a function of N); here {len(data.points)} runs from {budgets} budget(s)."]  # fmt: skip
    rows = [("E", fit.E), ("A", fit.A), ("B", fit.B), ("alpha", fit.alpha), ("beta", fit.beta), ("a", fit.a),
            ("b", fit.b)]  # fmt: skip
    names = {"alpha": "α", "beta": "β", "a": "a = β/(α+β): N_opt ∝ C^a", "b": "b = α/(α+β): D_opt ∝ C^b"}
    lines += ["| | fit | 95% interval | Chinchilla |", "|---|---|---|---|"]
    lines += [f"| {names.get(k, k)} | {_g(v, 4)} | {_ci(fit.ci.get(k), 4)} | {CHINCHILLA[k]} |" for k, v in rows]
    worst = max(fit.residuals, key=lambda r: abs(r[0].loss - r[1]))
    interval = (
        f"intervals from {fit.bootstrap} bootstrap resamples of the runs"
        if fit.ci
        else f"no intervals: only {fit.bootstrap} resamples of the runs had 6 distinct runs (train more runs)"
    )
    residual = worst[0].loss - worst[1]
    lines += [
        "",
        f"Huber loss (δ = 1e-3) on log L, BFGS from a grid of starts; {interval}. Residuals (observed - fitted "
        f"loss): RMSE {fit.rmse:.4f}, largest {residual:+.4f} ({worst[0].label}). Chinchilla's E, A, B are in nats "
        f"per BPE token of MassiveText, these in nats per token of this run's tokenizer: compare α, β, a and b.",
    ]
    if fit.undetermined:
        lines.append(
            f"Not determined by these runs (the fit ran to an edge no law has): {', '.join(fit.undetermined)}."
        )
    return lines


def runs_lines(data: ScalingData, fit: Parametric | None) -> list[str]:
    predicted = {id(p): pred for p, pred in fit.residuals} if fit else {}
    lines = ["## Runs and what each cost", "",
             "| run | layers x width | C (FLOPs) | FLOPs spent | N | D | steps | final val loss | fitted | residual | "
             "train time (s) |", "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for p, run in zip(data.points, data.runs):
        pred = predicted.get(id(p))
        shape = f"{run.config.get('model.n_layer')} x {run.config.get('model.n_embd')}"
        fitted = ("—", "—") if pred is None else (f"{pred:.4f}", f"{p.loss - pred:+.4f}")
        steps, spent = run.config.get("budget.chosen.steps"), _g(run.config.get("budget.chosen.flops"), 4)
        cells = [run.label, shape, f"{p.budget:.3g}", spent, f"{int(p.params):,}", f"{int(p.tokens):,}", str(steps),
                 f"{p.loss:.4f}", *fitted, _g(run.measure.get("total_time"), 4)]  # fmt: skip
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += [f"- left out: {run.label}: {why}" for run, why in data.excluded]
    return lines


def write_scaling(runs: list[Run], out: Path, *, params: str = "total", min_params: float = 0, n_boot: int = 1000,
                  seed: int = 0) -> dict:  # fmt: skip
    """Fit and write scaling.md, scaling.csv, scaling.json and the figures; returns their paths and the fits."""
    from analysis.scaling_plots import write_scaling_plots

    data = collect(runs, params=params, min_params=min_params)
    iso = fit_isoflop(data.points, n_boot=n_boot, seed=seed)
    parametric = fit_parametric(data.points, n_boot=max(1, n_boot // 5), seed=seed)
    total = sum(r.config.get("budget.chosen.flops") or 0 for r in data.runs)
    seconds = sum(r.measure.get("total_time") or 0 for r in data.runs)
    head = [
        "# Scaling fit", "",
        f"{len(data.points)} runs trained to a compute budget: {len({p.budget for p in data.points})} budgets, "
        f"{total:.3g} FLOPs and {seconds / 60:.1f} minutes of training in all. N: {PARAMS[params][1]}. D: tokens "
        f"trained (steps x tokens per step). L: the final val/loss, at the end of each run's schedule. Each run spends "
        f"its budget rounded down to whole steps. Figures: isoflop.png, scaling_laws.png, parametric_fit.png.", "",
    ]  # fmt: skip
    md = out / "scaling.md"
    sections = [head, isoflop_lines(iso, data, n_boot), parametric_lines(parametric, data),
                runs_lines(data, parametric)]  # fmt: skip
    md.write_text("\n\n".join("\n".join(s) for s in sections) + "\n")
    csv_path = write_points(data, parametric, out / "scaling.csv")
    summary = summarise(iso, parametric, params=params, n_boot=n_boot)
    json_path = out / "scaling.json"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    plots = list(write_scaling_plots(data, iso, parametric, out))
    return {"md": md, "csv": csv_path, "json": json_path, "plots": plots, "isoflop": iso, "parametric": parametric,
            "data": data, "summary": summary}  # fmt: skip


def write_points(data: ScalingData, fit: Parametric | None, path: Path) -> Path:
    predicted = {id(p): pred for p, pred in fit.residuals} if fit else {}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "budget", "flops_spent", "params", "tokens", "steps", "final_val_loss", "fitted_loss",
                    "train_time", "path"])  # fmt: skip
        for p, run in zip(data.points, data.runs):
            w.writerow([p.label, p.budget, run.config.get("budget.chosen.flops"), int(p.params), int(p.tokens),
                        run.config.get("budget.chosen.steps"), p.loss, predicted.get(id(p), ""),
                        run.measure.get("total_time", ""), str(run.path)])  # fmt: skip
    return path


def summarise(iso: IsoFlopFit, fit: Parametric | None, *, params: str, n_boot: int) -> dict:
    """The fits as plain numbers (scaling.json, W&B summary)."""
    out: dict = {"params_counted": params, "interval": f"{CI[1] - CI[0]:g}% bootstrap", "chinchilla": CHINCHILLA}
    out["isoflop"] = {
        "minima": [
            {"budget": p.budget, **dict(zip(("params", "tokens", "loss"), p.optimum)), "interior": p.interior}
            for p in iso.parabolas
            if p.optimum is not None
        ],
        "a": None if iso.params is None else asdict(iso.params),
        "b": None if iso.tokens is None else asdict(iso.tokens),
        "bootstrap": iso.bootstrap,
        "bootstrap_tried": n_boot,
        "why_not": iso.why_not or None,
    }
    if fit is not None:
        values = {k: getattr(fit, k) for k in ("E", "A", "B", "alpha", "beta", "a", "b")}
        out["parametric"] = {**values, "ci": fit.ci, "rmse": fit.rmse, "bootstrap": fit.bootstrap}
    else:
        out["parametric"] = None
    return out
