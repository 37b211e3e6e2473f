"""The scaling section's figures; like analysis/plots.py, each function returns the data it plotted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.scaling import ScalingData
from analysis.scaling_fit import CHINCHILLA, IsoFlopFit, Parametric, by_budget

Series = dict[str, list]


def _color(budgets: list[float], c: float) -> str:
    return f"C{budgets.index(c) % 10}"


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes)


def isoflop_curves(fig, data: ScalingData, iso: IsoFlopFit) -> Series:
    """Final loss against N (left) and D (right) per budget; the parabola over ln N and its minimum (a star)."""
    ax_n, ax_d = fig.subplots(1, 2)
    groups = by_budget(data.points)
    budgets = list(groups)
    parabolas = {p.budget: p for p in iso.parabolas}
    drawn: Series = {}
    for c, pts in groups.items():
        color, label = _color(budgets, c), f"C = {c:.3g}"
        ax_n.scatter([p.params for p in pts], [p.loss for p in pts], color=color, label=label)
        ax_d.scatter([p.tokens for p in pts], [p.loss for p in pts], color=color, label=label)
        drawn[label] = [(p.params, p.tokens, p.loss) for p in pts]
        parabola = parabolas.get(c)
        if parabola is None:
            continue
        lo, hi = parabola.x_range
        x = np.linspace(lo - 0.15 * (hi - lo), hi + 0.15 * (hi - lo), 100)
        ax_n.plot(np.exp(x), parabola.loss(x), color=color, lw=1)
        if parabola.optimum is not None:
            n, d, loss = parabola.optimum
            face = color if parabola.interior else "none"  # hollow: outside the sizes trained, not used
            ax_n.scatter([n], [loss], facecolor=face, marker="*", s=180, edgecolor="k", zorder=3)
            drawn[f"minimum {label}"] = [(n, d, loss, parabola.interior)]
    for ax, name in ((ax_n, "parameters N"), (ax_d, "tokens D")):
        ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("final val loss")
        if drawn:
            ax.legend(fontsize=7)
        else:
            _empty(ax, "no run trained to a budget")
    ax_n.set_title("IsoFLOP curves: loss vs N (parabola over ln N; minimum *, hollow: extrapolated)")
    ax_d.set_title("the same runs against tokens D")
    return drawn


def optimal_allocation(fig, data: ScalingData, iso: IsoFlopFit) -> Series:
    """N_opt(C) and D_opt(C) from the IsoFLOP minima (log-log), the fitted power law, Chinchilla's slope."""
    axes = fig.subplots(1, 2)
    drawn: Series = {}
    used = [p for p in iso.used if p.optimum is not None]
    for ax, index, law, name, chinchilla in ((axes[0], 0, iso.params, "N_opt", CHINCHILLA["a"]),
                                             (axes[1], 1, iso.tokens, "D_opt", CHINCHILLA["b"])):  # fmt: skip
        ax.set_title(f"{name}(C)")
        ax.set_xlabel("compute C (FLOPs)")
        ax.set_ylabel(name)
        if law is None:
            _empty(ax, iso.why_not or "no minima")
            continue
        c = np.array([p.budget for p in used])
        y = np.array([p.optimum[index] for p in used])
        ax.scatter(c, y, color="k", zorder=3, label="IsoFLOP minima")
        grid = np.geomspace(c.min() / 1.5, c.max() * 1.5, 50)
        ci = f" [{law.ci[0]:.2f}, {law.ci[1]:.2f}]" if law.ci else ""
        ax.plot(grid, law(grid), color="C0", label=f"fit: {name} ∝ C^{law.exponent:.3f}{ci}")
        pivot_c, pivot_y = np.exp(np.log(c).mean()), np.exp(np.log(y).mean())
        ax.plot(grid, pivot_y * (grid / pivot_c) ** chinchilla, color="C3", ls="--",
                label=f"Chinchilla's slope, C^{chinchilla}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        drawn[name] = [(float(a), float(b)) for a, b in zip(c, y)]
        drawn[f"{name} law"] = [law.exponent, law.coefficient]
    return drawn


def parametric_fit(fig, data: ScalingData, fit: Parametric | None) -> Series:
    """The runs with the fitted L(N, D) along each budget (left) and the residuals against N (right)."""
    ax_l, ax_r = fig.subplots(1, 2)
    ax_l.set_title("L(N, D) = E + A/N^α + B/D^β along each budget")
    ax_r.set_title("residuals: observed - fitted loss")
    if fit is None:
        for ax in (ax_l, ax_r):
            _empty(ax, "not fitted (fewer than 6 runs)")
        return {}
    groups = by_budget(data.points)
    budgets = list(groups)
    drawn: Series = {}
    fitted = {id(p): pred for p, pred in fit.residuals}
    for c, pts in groups.items():
        color, label = _color(budgets, c), f"C = {c:.3g}"
        n, d = np.array([p.params for p in pts]), np.array([p.tokens for p in pts])
        ax_l.scatter(n, [p.loss for p in pts], color=color, label=label)
        if len(set(n)) > 1:  # the budget's D as a function of N (a line on log scale), through the fit
            slope, intercept = np.polyfit(np.log(n), np.log(d), 1)
            grid = np.geomspace(n.min() / 1.3, n.max() * 1.3, 80)
            ax_l.plot(grid, fit.predict(grid, np.exp(intercept) * grid**slope), color=color, lw=1)
        residuals = [p.loss - fitted[id(p)] for p in pts]
        ax_r.scatter(n, residuals, color=color, label=label)
        drawn[label] = [(p.params, p.loss, fitted[id(p)]) for p in pts]
    ax_r.axhline(0, color="k", lw=0.8)
    for ax, ylabel in ((ax_l, "final val loss"), (ax_r, "residual (nats)")):
        ax.set_xscale("log")
        ax.set_xlabel("parameters N")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    return drawn


# file name -> (function, figure size in inches); each function takes (fig, data, iso, parametric)
SCALING_PLOTS = {
    "isoflop.png": (lambda fig, data, iso, par: isoflop_curves(fig, data, iso), (12, 4.5)),
    "scaling_laws.png": (lambda fig, data, iso, par: optimal_allocation(fig, data, iso), (12, 4.5)),
    "parametric_fit.png": (lambda fig, data, iso, par: parametric_fit(fig, data, par), (12, 4.5)),
}


def write_scaling_plots(data: ScalingData, iso: IsoFlopFit, fit: Parametric | None, out: Path) -> dict[Path, Series]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = {}
    for name, (draw, size) in SCALING_PLOTS.items():
        fig = plt.figure(figsize=size)
        written[out / name] = draw(fig, data, iso, fit)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
    return written
