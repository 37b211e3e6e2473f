"""The ablation study's section of a report: runs grouped by (budget, variant) over their seeds, each variant
against the baseline trained with the same seeds.

A run's variant is Hydra's choice of the `ablation` group (`ablation=rope`; none = the baseline), its budget is
`ablations.budget` (steps | time) and its seed `seed`, all read from the run's own files. The difference to the
baseline is paired by seed (variant seed s minus baseline seed s, which share data order and, where shapes agree,
initial weights), so its spread is the spread of the paired differences, not of the two groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev

from analysis.runs import Run

BASELINE = "baseline"


@dataclass
class Group:
    budget: str
    variant: str
    runs: list[Run]

    def values(self, key: str) -> list[float]:
        return [float(r.row[key]) for r in self.runs if r.row.get(key) is not None]

    def by_seed(self, key: str) -> dict:
        return {r.config.get("seed"): float(r.row[key]) for r in self.runs if r.row.get(key) is not None}


def is_ablation(run: Run) -> bool:
    return run.ablation is not None or run.config.get("ablations.budget") is not None


def finished(run: Run) -> bool:
    """A run that trained to its budget: status.json says completed (a sweep job), or a single run left its
    measure.json (written when fit ends). A job stopped midway would bias its variant's mean."""
    if run.status:
        return run.status.get("status") == "completed"
    return (run.path / "measure.json").is_file()


def ablation_groups(runs: list[Run]) -> list[Group]:
    """Finished runs of an ablation sweep grouped by (budget, variant), the baseline first within each budget; []
    when no run belongs to one (no `ablation` choice and no `ablations.budget`)."""
    tagged = [r for r in runs if is_ablation(r) and finished(r)]
    if not tagged:
        return []
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in tagged:
        key = (str(r.config.get("ablations.budget") or "steps"), r.ablation or BASELINE)
        groups.setdefault(key, []).append(r)
    order = sorted(groups, key=lambda k: (k[0], k[1] != BASELINE, k[1]))
    return [Group(budget, variant, groups[(budget, variant)]) for budget, variant in order]


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return mean(values), (stdev(values) if len(values) > 1 else 0.0)


def paired_difference(group: Group, baseline: Group | None, key: str = "best_val_loss") -> tuple:
    """(mean, std, n) of variant minus baseline over the seeds both ran; (None, None, 0) without a pair."""
    if baseline is None:
        return None, None, 0
    mine, base = group.by_seed(key), baseline.by_seed(key)
    diffs = [mine[s] - base[s] for s in mine if s in base]
    m, s = mean_std(diffs)
    return m, s, len(diffs)


def _pm(m: float | None, s: float | None, fmt: str) -> str:
    return "—" if m is None else f"{m:{fmt}} ± {s:{fmt}}"


def ablation_table(groups: list[Group]) -> str:
    """Markdown: per budget and variant, the seeds, best val loss mean ± std (sample std over seeds), the paired
    difference to the baseline, tokens/s, parameters, steps and training time."""
    baselines = {g.budget: g for g in groups if g.variant == BASELINE}
    head = ("budget", "variant", "seeds", "best val loss", "Δ vs baseline (paired)", "tokens/s", "parameters",
            "steps", "total time (s)")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in groups:
        diff, spread, n = paired_difference(g, baselines.get(g.budget))
        delta = "—" if g.variant == BASELINE or diff is None else f"{diff:+.4f} ± {spread:.4f} (n={n})"
        params = g.values("params")
        cells = (
            g.budget,
            g.variant,
            str(len(g.values("best_val_loss"))),
            _pm(*mean_std(g.values("best_val_loss")), ".4f"),
            delta,
            _pm(*mean_std(g.values("tokens_per_sec")), ",.0f"),
            f"{int(params[0]):,}" if params else "—",
            _pm(*mean_std(g.values("steps")), ".0f"),
            _pm(*mean_std(g.values("total_time")), ".1f"),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_differences(groups: list[Group], path: Path) -> dict[str, list[tuple[str, float, float]]]:
    """One panel per budget: each variant's paired difference of best val loss to the baseline (mean, error bar =
    std over seeds); left of zero is better. Returns {budget: [(variant, mean, std)]} as drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({g.budget for g in groups})
    drawn: dict[str, list[tuple[str, float, float]]] = {}
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.5 * len(budgets), 0.45 * len(groups) + 2), squeeze=False)
    for ax, budget in zip(axes[0], budgets):
        base = next((g for g in groups if g.budget == budget and g.variant == BASELINE), None)
        rows = []
        for g in groups:
            if g.budget != budget or g.variant == BASELINE:
                continue
            m, s, _ = paired_difference(g, base)
            if m is not None and math.isfinite(m):
                rows.append((g.variant, m, s))
        drawn[budget] = rows
        ax.set_title(f"equal {'steps' if budget == 'steps' else 'wall time'}: best val loss − baseline")
        if rows:
            ys = range(len(rows))
            ax.barh(list(ys), [m for _, m, _ in rows], xerr=[s for _, _, s in rows], capsize=3,
                    color=["C2" if m < 0 else "C3" for _, m, _ in rows])  # fmt: skip
            ax.set_yticks(list(ys), [v for v, _, _ in rows])
            ax.invert_yaxis()
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("Δ best val loss (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def write_ablation(runs: list[Run], out: Path) -> tuple[Path, Path] | None:
    """ablation.md (the table) and ablation.png (the differences) in out, or None when no run is an ablation."""
    groups = ablation_groups(runs)
    if not groups:
        return None
    md, png = out / "ablation.md", out / "ablation.png"
    note = (
        "Best val loss: mean ± sample std over seeds. Δ: variant minus baseline, paired by seed (mean ± std of the "
        "per-seed differences). Budget steps: every run trains the same optimizer steps; time: the same training "
        "wall time (trainer.max_time; the LR schedule follows the clock)."
    )
    left_out = [r for r in runs if is_ablation(r) and not finished(r)]
    if left_out:
        note += " Left out, not finished: " + "; ".join(f"{r.path} ({r.status.get('status', 'no measure.json')})"
                                                      for r in left_out) + "."  # fmt: skip
    md.write_text("# Ablation study\n\n" + ablation_table(groups) + "\n\n" + note + "\n")
    plot_differences(groups, png)
    return md, png
