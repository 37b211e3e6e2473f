"""Compare finished runs: one table (Markdown + CSV) and PNG plots from their local files alone.

A run directory is what train.py writes: config.yaml (resolved config), csv/metrics.csv (every logged
metric), measure.json (Measure callback), generation.json (GenerationMetrics), and in a multirun
.hydra/overrides.yaml and status.json (a failed job's reason). Missing files are reported, not fatal.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean, median

from omegaconf import OmegaConf

PLOTS = (
    "loss_curves.png",
    "val_loss_vs_params.png",
    "times.png",
    "inference_time.png",
    "word_accuracy.png",
    "memory.png",
)

COLUMNS: list[tuple[str, str]] = [  # (key, header)
    ("run", "run"),
    ("status", "status"),
    ("batch_size", "batch"),
    ("block_size", "block"),
    ("n_embd", "n_embd"),
    ("n_head", "n_head"),
    ("n_layer", "n_layer"),
    ("params", "parameters"),
    ("best_val_loss", "best val loss"),
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


@dataclass
class Run:
    path: Path
    label: str = ""
    config: dict = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    measure: dict = field(default_factory=dict)
    generation: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    row: dict = field(default_factory=dict)

    def series(self, key: str) -> list[tuple[int, float]]:
        return self.metrics.get(key, [])


# ---------------------------------------------------------------------------------------------------------
# Finding and reading runs


def _is_run(d: Path) -> bool:
    return (
        (d / ".hydra").is_dir()
        or (d / "status.json").is_file()
        or ((d / "config.yaml").is_file() and ((d / "csv").is_dir() or (d / "train.log").is_file()))
    )


def _sort_key(p: Path):
    return (str(p.parent), 0, int(p.name), "") if p.name.isdigit() else (str(p.parent), 1, 0, p.name)


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories among paths: each path is a run, or a folder (a multirun) searched for runs."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.is_dir():
            raise FileNotFoundError(f"{raw} is not a directory (give run or multirun directories)")
        if _is_run(p):
            found.append(p)
            continue
        candidates = {d.parent for d in p.rglob(".hydra")} | {f.parent for f in p.rglob("config.yaml")}
        candidates |= {f.parent for f in p.rglob("status.json")}
        runs = [d for d in candidates if "wandb" not in d.relative_to(p).parts and _is_run(d)]
        if not runs:
            raise FileNotFoundError(f"{raw} holds no run directory (no .hydra/, config.yaml or status.json)")
        found.extend(sorted(runs, key=_sort_key))
    return list(dict.fromkeys(found))


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv -> {column: [(step, value), ...]} for every non-empty cell."""
    out: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                step = int(float(row.get("step") or 0))
            except ValueError:
                step = 0
            for key, value in row.items():
                if key in ("step", "epoch") or value in (None, ""):
                    continue
                try:
                    out.setdefault(key, []).append((step, float(value)))
                except ValueError:
                    continue
    return out


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _read_config(run: Path) -> dict:
    for candidate in (run / "config.yaml", run / ".hydra" / "config.yaml"):
        if candidate.is_file():
            try:
                cfg = OmegaConf.load(candidate)
            except Exception:
                continue
            keys = ("data.batch_size", "data.block_size", "data.tokenizer", "model.n_embd", "model.n_head")
            keys += ("model.n_layer", "model.vocab_size", "model.bias", "model.block_size", "model.name")
            keys += ("model.attention", "logger.wandb.project")
            out = {}
            for key in keys:
                try:
                    value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
                except Exception:
                    value = None
                if value is not None and not OmegaConf.is_config(value):
                    out[key] = value
            return out
    return {}


def read_run(path: Path) -> Run:
    run = Run(path=path)
    run.config = _read_config(path)
    if not run.config:
        run.problems.append("no config.yaml")
    overrides = path / ".hydra" / "overrides.yaml"
    if overrides.is_file():
        try:
            run.overrides = [str(o) for o in OmegaConf.to_container(OmegaConf.load(overrides))]
        except Exception:
            pass
    run.status = _read_json(path / "status.json")
    if not run.overrides and run.status.get("overrides"):
        run.overrides = [str(o) for o in run.status["overrides"]]
    metrics = path / "csv" / "metrics.csv"
    if metrics.is_file():
        run.metrics = read_metrics(metrics)
    else:
        run.problems.append("no csv/metrics.csv")
    run.measure = _read_json(path / "measure.json")
    if not run.measure:
        run.problems.append("no measure.json")
    run.generation = _read_json(path / "generation.json")
    if not run.generation:
        run.problems.append("no generation.json")
    return run


def _params_from_config(cfg: dict) -> int | None:
    """Parameter count from the sizes, for runs that did not get to write measure.json."""
    from lab.estimate import KNOWN_VOCAB
    from models import sizing
    from models.gpt import GPTConfig

    vocab = cfg.get("model.vocab_size") if "model.vocab_size" in cfg else KNOWN_VOCAB.get(cfg.get("data.tokenizer"))
    try:
        model = GPTConfig(
            vocab_size=int(vocab),
            block_size=int(cfg.get("model.block_size") or cfg["data.block_size"]),
            n_layer=int(cfg["model.n_layer"]),
            n_head=int(cfg["model.n_head"]),
            n_embd=int(cfg["model.n_embd"]),
            bias=bool(cfg.get("model.bias", False)),
        )
    except (KeyError, TypeError, ValueError):
        return None
    return sizing.num_params(model)


def _labels(runs: list[Run]) -> None:
    """Label each run by the overrides that differ between runs (else its directory name)."""
    sets = [dict(o.split("=", 1) for o in r.overrides if "=" in o) for r in runs]
    keys = sorted({k for s in sets for k in s})
    varying = [k for k in keys if len({s.get(k) for s in sets}) > 1]
    for run, s in zip(runs, sets):
        parts = [f"{k.split('.')[-1]}={s[k]}" for k in varying if k in s]
        name = run.path.name
        run.label = f"{name}: {' '.join(parts)}" if parts and name.isdigit() else (" ".join(parts) or name)


def summarise(run: Run) -> dict:
    """One table row: numbers from measure.json / generation.json, else from metrics.csv."""
    m, g, cfg = run.measure, run.generation.get("summary", {}), run.config
    val = [v for _, v in run.series("val/loss")]

    def from_csv(key: str, how) -> float | None:
        values = [v for _, v in run.series(key)]
        return how(values) if values else None

    row = {
        "run": run.label,
        "batch_size": cfg.get("data.batch_size"),
        "block_size": cfg.get("data.block_size"),
        "n_embd": cfg.get("model.n_embd"),
        "n_head": cfg.get("model.n_head"),
        "n_layer": cfg.get("model.n_layer"),
        "params": m.get("params") or _params_from_config(cfg),
        "best_val_loss": min(val) if val else None,
        "word_accuracy": g.get("word_accuracy"),
        "tokens_per_sec": m.get("tokens_per_sec") or from_csv("perf/tokens_per_sec", median),
        "step_time": m.get("step_time") or from_csv("perf/step_time", median),
        "val_time": m.get("val_time") or from_csv("perf/val_time", mean),
        "inference_time": g.get("time_mean"),
        "inference_p90": g.get("time_p90"),
        "total_time": m.get("total_time") or from_csv("perf/total_time", max),
        "peak_memory_mb": m.get("peak_memory_mb") or from_csv("perf/peak_memory_mb", max),
        "estimated_memory_mb": m.get("estimated_memory_mb") or from_csv("perf/estimated_memory_mb", max),
        "path": str(run.path),
    }
    if run.status.get("status") == "failed":
        status = f"failed: {run.status.get('error', 'unknown error')}"
    elif not run.metrics or not val:
        status = "failed: " + ("; ".join(run.problems) or "no val/loss logged")
    elif run.problems:
        status = "incomplete: " + "; ".join(run.problems)
    else:
        status = "ok"
    row["status"] = status.replace("\n", " ")
    return row


def load_runs(paths: list[str | Path]) -> list[Run]:
    runs = [read_run(p) for p in find_runs(paths)]
    _labels(runs)
    for run in runs:
        run.row = summarise(run)
    return runs


# ---------------------------------------------------------------------------------------------------------
# Table


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
    kinds = {r.measure.get("memory_kind") for r in runs if r.measure.get("memory_kind")}
    if "process_peak_rss" in kinds:
        notes.append(
            "Peak memory on CPU is the process' peak RSS (Python, PyTorch and the data included); on GPUs it is "
            "the CUDA allocator's peak. The estimate counts the training step's tensors only."
        )
    md.write_text("# Run report\n\n" + "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n")
    return md, csv_path


# ---------------------------------------------------------------------------------------------------------
# Plots


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no run has {what}", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _bars(ax, runs: list[Run], key: str, title: str, ylabel: str) -> None:
    have = [r for r in runs if r.row.get(key) is not None]
    ax.set_title(title)
    if not have:
        _empty(ax, title.lower())
        return
    ax.bar(range(len(have)), [r.row[key] for r in have], color=[f"C{runs.index(r) % 10}" for r in have])
    ax.set_xticks(range(len(have)), [r.label for r in have], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)


def write_plots(runs: list[Run], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        paths.append(out / name)

    # Loss curves: train (thin line) and val (markers) per run.
    fig, (ax_t, ax_v) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, r in enumerate(runs):
        color = f"C{i % 10}"
        if r.series("train/loss"):
            ax_t.plot(*zip(*r.series("train/loss")), color=color, lw=0.8, alpha=0.8, label=r.label)
        if r.series("val/loss"):
            ax_v.plot(*zip(*r.series("val/loss")), "o-", color=color, ms=3, label=r.label)
    for ax, name in ((ax_t, "train loss"), (ax_v, "val loss")):
        ax.set_title(name)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            _empty(ax, name)
    save(fig, "loss_curves.png")

    # Best val loss against parameters.
    fig, ax = plt.subplots(figsize=(7, 4.5))
    have = [r for r in runs if r.row.get("best_val_loss") is not None and r.row.get("params")]
    for r in have:
        i = runs.index(r)
        ax.scatter(r.row["params"], r.row["best_val_loss"], color=f"C{i % 10}", label=r.label)
        ax.annotate(r.label, (r.row["params"], r.row["best_val_loss"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")  # fmt: skip
    ax.set_title("best val loss vs parameters")
    if have:
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("best val loss")
    else:
        _empty(ax, "a val loss")
    save(fig, "val_loss_vs_params.png")

    # Times per run.
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5))
    _bars(axes[0], runs, "step_time", "Time per training step", "seconds")
    _bars(axes[1], runs, "val_time", "Time per validation pass", "seconds")
    _bars(axes[2], runs, "total_time", "Total time (train + validation)", "seconds")
    save(fig, "times.png")

    # Inference time per sample: distribution of the generation samples' times.
    fig, ax = plt.subplots(figsize=(8, 4.5))
    have = [r for r in runs if r.generation.get("samples")]
    ax.set_title("inference time per sample")
    if have:
        data = [[s["time"] for s in r.generation["samples"]] for r in have]
        ax.boxplot(data)
        ax.set_xticks(range(1, len(have) + 1), [r.label for r in have], rotation=30, ha="right", fontsize=8)
        n = have[0].generation.get("settings", {}).get("num_words")
        ax.set_ylabel(f"seconds per sample of {n} words" if n else "seconds per sample")
    else:
        _empty(ax, "generation metrics")
    save(fig, "inference_time.png")

    # Word accuracy: pooled (bar) and per sample (dots).
    fig, ax = plt.subplots(figsize=(8, 4.5))
    have = [r for r in runs if r.row.get("word_accuracy") is not None]
    ax.set_title("word accuracy (share of generated words found in the training text)")
    if have:
        xs = range(len(have))
        ax.bar(xs, [r.row["word_accuracy"] for r in have], color=[f"C{runs.index(r) % 10}" for r in have], alpha=0.6)
        for x, r in zip(xs, have):
            accs = [s["word_accuracy"] for s in r.generation.get("samples", []) if s.get("word_accuracy") is not None]
            ax.scatter([x] * len(accs), accs, color="k", s=8)
        ax.set_xticks(list(xs), [r.label for r in have], rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
    else:
        _empty(ax, "word accuracy")
    save(fig, "word_accuracy.png")

    # Estimated against measured memory.
    fig, ax = plt.subplots(figsize=(8, 4.5))
    have = [r for r in runs if r.row.get("peak_memory_mb") is not None or r.row.get("estimated_memory_mb") is not None]
    ax.set_title("memory: estimated vs measured peak")
    if have:
        xs = list(range(len(have)))
        est = [r.row.get("estimated_memory_mb") or 0 for r in have]
        peak = [r.row.get("peak_memory_mb") or 0 for r in have]
        start = [r.measure.get("memory_at_start_mb") or 0 for r in have]
        ax.bar([x - 0.27 for x in xs], est, width=0.27, label="estimated (training step tensors)")
        ax.bar(xs, peak, width=0.27, label="measured peak")
        ax.bar([x + 0.27 for x in xs], start, width=0.27, label="measured at fit start", hatch="//", alpha=0.6)
        ax.set_xticks(xs, [r.label for r in have], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("MiB")
        positive = [v for v in est + peak + start if v > 0]
        if positive and max(positive) / min(positive) > 20:
            ax.set_yscale("log")
        kinds = {r.measure.get("memory_kind") for r in have} - {None}
        if kinds:
            ax.set_xlabel("measured: " + ", ".join(sorted(kinds)))
        ax.legend(fontsize=7)
    else:
        _empty(ax, "memory metrics")
    save(fig, "memory.png")
    return paths


# ---------------------------------------------------------------------------------------------------------
# W&B


def log_to_wandb(runs: list[Run], out: Path, plots: list[Path], *, mode: str = "auto") -> str:
    """Log the table and figures to W&B: always with mode="on" (an offline run without credentials),
    with "auto" only when online. Returns what happened, in words."""
    from lab.config import wandb_offline

    offline = wandb_offline()
    if mode == "off" or (mode == "auto" and offline):
        return "W&B: offline (no credentials or WANDB_MODE=offline), figures not uploaded"
    import wandb

    project = next((r.config["logger.wandb.project"] for r in runs if r.config.get("logger.wandb.project")), None)
    run = wandb.init(
        project=project or "tformer-lab",
        job_type="report",
        name=f"report-{out.parent.name}",
        dir=str(out),
        mode="offline" if offline else "online",
    )
    table = wandb.Table(columns=[k for k, _ in COLUMNS])
    for r in runs:
        table.add_data(*[r.row.get(k) for k, _ in COLUMNS])
    run.log({"report/summary": table, **{f"report/{p.stem}": wandb.Image(str(p)) for p in plots}})
    where = run.url if not offline else f"offline run in {Path(run.dir).parent} (upload: wandb sync)"
    run.finish()
    return f"W&B: logged to {where}"


def default_out(paths: list[str | Path]) -> Path:
    resolved = [Path(p).expanduser().resolve() for p in paths]
    base = resolved[0] if len(resolved) == 1 else Path(os.path.commonpath(resolved))
    return base / "report"


def make_report(paths: list[str | Path], out: str | Path | None = None, *, wandb_mode: str = "auto") -> dict:
    runs = load_runs(paths)
    out_dir = Path(out) if out else default_out(paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, csv_path = write_table(runs, out_dir)
    plots = write_plots(runs, out_dir)
    wandb_note = log_to_wandb(runs, out_dir, plots, mode=wandb_mode)
    return {"runs": runs, "out": out_dir, "table": md, "csv": csv_path, "plots": plots, "wandb": wandb_note}
