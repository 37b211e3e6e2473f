"""The report's figures, one function each; `PLOTS` maps each PNG file name to the function that draws it.

Each function takes the runs and a matplotlib Axes (or a figure it fills) and returns the data it plotted
as {label: points}, so tests can check what each figure shows without reading pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from analysis.runs import Run

Series = dict[str, list]


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no run has {what}", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _color(runs: list[Run], run: Run) -> str:
    return f"C{runs.index(run) % 10}"


def _labels_below(ax, ticks, runs: list[Run]) -> None:
    ax.set_xticks(list(ticks), [r.label for r in runs], rotation=30, ha="right", fontsize=8)


def _bars(ax, runs: list[Run], key: str, title: str, ylabel: str) -> Series:
    have = [r for r in runs if r.row.get(key) is not None]
    ax.set_title(title)
    if not have:
        _empty(ax, title.lower())
        return {}
    ax.bar(range(len(have)), [r.row[key] for r in have], color=[_color(runs, r) for r in have])
    _labels_below(ax, range(len(have)), have)
    ax.set_ylabel(ylabel)
    return {r.label: [r.row[key]] for r in have}


def loss_curves(fig, runs: list[Run]) -> Series:
    """Train loss (thin line) and val loss (markers) against the step, one colour per run."""
    ax_t, ax_v = fig.subplots(1, 2)
    drawn: Series = {}
    for r in runs:
        for ax, key, style in (
            (ax_t, "train/loss", dict(lw=0.8, alpha=0.8)),
            (ax_v, "val/loss", dict(marker="o", ms=3)),
        ):
            if r.series(key):
                ax.plot(*zip(*r.series(key)), color=_color(runs, r), label=r.label, **style)
                drawn[f"{key} {r.label}"] = r.series(key)
    for ax, name in ((ax_t, "train loss"), (ax_v, "val loss")):
        ax.set_title(name)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            _empty(ax, name)
    return drawn


def val_loss_vs_params(fig, runs: list[Run]) -> Series:
    ax = fig.subplots()
    have = [r for r in runs if r.row.get("best_val_loss") is not None and r.row.get("params")]
    for r in have:
        point = (r.row["params"], r.row["best_val_loss"])
        ax.scatter(*point, color=_color(runs, r), label=r.label)
        ax.annotate(r.label, point, fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_title("best val loss vs parameters")
    if have:
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("best val loss")
    else:
        _empty(ax, "a val loss")
    return {r.label: [(r.row["params"], r.row["best_val_loss"])] for r in have}


def times(fig, runs: list[Run]) -> Series:
    axes = fig.subplots(1, 3)
    drawn: Series = {}
    panels = (("step_time", "Time per training step"), ("val_time", "Time per validation pass"),
              ("total_time", "Total time (train + validation)"))  # fmt: skip
    for ax, (key, title) in zip(axes, panels):
        drawn.update({f"{key} {label}": v for label, v in _bars(ax, runs, key, title, "seconds").items()})
    return drawn


def inference_time(fig, runs: list[Run]) -> Series:
    """Distribution of the generation samples' times (one box per run)."""
    ax = fig.subplots()
    have = [r for r in runs if r.generation.get("samples")]
    ax.set_title("inference time per sample")
    if not have:
        _empty(ax, "generation metrics")
        return {}
    data = [[s["time"] for s in r.generation["samples"]] for r in have]
    ax.boxplot(data)
    _labels_below(ax, range(1, len(have) + 1), have)
    n = have[0].generation.get("settings", {}).get("num_words")
    ax.set_ylabel(f"seconds per sample of {n} words" if n else "seconds per sample")
    return {r.label: d for r, d in zip(have, data)}


def word_accuracy(fig, runs: list[Run]) -> Series:
    """Pooled word accuracy (bars) and each sample's (dots)."""
    ax = fig.subplots()
    have = [r for r in runs if r.row.get("word_accuracy") is not None]
    ax.set_title("word accuracy (share of generated words found in the training text)")
    if not have:
        _empty(ax, "word accuracy")
        return {}
    xs = range(len(have))
    ax.bar(xs, [r.row["word_accuracy"] for r in have], color=[_color(runs, r) for r in have], alpha=0.6)
    drawn: Series = {}
    for x, r in zip(xs, have):
        accs = [s["word_accuracy"] for s in r.generation.get("samples", []) if s.get("word_accuracy") is not None]
        ax.scatter([x] * len(accs), accs, color="k", s=8)
        drawn[r.label] = [r.row["word_accuracy"], *accs]
    _labels_below(ax, xs, have)
    ax.set_ylim(0, 1)
    return drawn


def memory(fig, runs: list[Run]) -> Series:
    """Estimated against measured peak memory (and the memory held when fit started)."""
    ax = fig.subplots()
    have = [r for r in runs if r.row.get("peak_memory_mb") is not None or r.row.get("estimated_memory_mb") is not None]
    ax.set_title("memory: estimated vs measured peak")
    if not have:
        _empty(ax, "memory metrics")
        return {}
    xs = list(range(len(have)))
    bars = {
        "estimated (training step tensors)": [r.row.get("estimated_memory_mb") or 0 for r in have],
        "measured peak": [r.row.get("peak_memory_mb") or 0 for r in have],
        "measured at fit start": [r.measure.get("memory_at_start_mb") or 0 for r in have],
    }
    for offset, (label, values) in zip((-0.27, 0.0, 0.27), bars.items()):
        hatch = dict(hatch="//", alpha=0.6) if label == "measured at fit start" else {}
        ax.bar([x + offset for x in xs], values, width=0.27, label=label, **hatch)
    _labels_below(ax, xs, have)
    ax.set_ylabel("MiB")
    positive = [v for values in bars.values() for v in values if v > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_yscale("log")
    kinds = {r.measure.get("memory_kind") for r in have} - {None}
    if kinds:
        ax.set_xlabel("measured: " + ", ".join(sorted(kinds)))
    ax.legend(fontsize=7)
    return {r.label: [bars[k][i] for k in bars] for i, r in enumerate(have)}


# file name -> (function, figure size in inches)
PLOTS: dict[str, tuple[Callable, tuple[float, float]]] = {
    "loss_curves.png": (loss_curves, (12, 4.5)),
    "val_loss_vs_params.png": (val_loss_vs_params, (7, 4.5)),
    "times.png": (times, (14, 4.5)),
    "inference_time.png": (inference_time, (8, 4.5)),
    "word_accuracy.png": (word_accuracy, (8, 4.5)),
    "memory.png": (memory, (8, 4.5)),
}


def write_plots(runs: list[Run], out: Path) -> dict[Path, Series]:
    """Draw every figure of PLOTS into out/; returns each file with the data it plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = {}
    for name, (draw, size) in PLOTS.items():
        fig = plt.figure(figsize=size)
        data = draw(fig, runs)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written[out / name] = data
    return written
