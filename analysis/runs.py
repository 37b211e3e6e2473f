"""Finished runs read from their local files alone: discovery, parsing, and one summary row per run.

A run directory is what train.py writes: config.yaml (resolved config), csv/metrics.csv (every logged
metric), measure.json (Measure callback), generation.json (GenerationMetrics: GPT runs only), .hydra/hydra.yaml
(the config groups chosen: the experiment preset), and in a multirun .hydra/overrides.yaml and status.json (a
failed job's reason). A missing or unreadable file is recorded in the run's `problems` (and so in the table's
status column), never silently skipped.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean, median

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from errors import MissingFileError

# Config values a report shows or needs (sizes, tokenizer, W&B project), besides every model.* value.
CONFIG_KEYS = (
    "data.batch_size", "data.block_size", "data.tokenizer", "model.n_embd", "model.n_head", "model.n_layer",
    "model.vocab_size", "model.bias", "model.block_size", "model.name", "model.attention", "logger.wandb.project",
    "model.vocab_multiple",
    "logger.wandb.group", "model._target_", "model.n_enc_layer", "model.n_dec_layer", "data.shared_vocab",
    "model.d_ff", "model.tie_embeddings", "model.head_bias", "model.positions", "seed", "ablations.budget",
    # a run trained to a compute budget (training/budget.py): the scaling section of the report
    "budget.flops", "budget.chosen.steps", "budget.chosen.tokens", "budget.chosen.flops", "budget.chosen.params",
    "budget.chosen.non_embedding_params",
    # whether the run was meant to write generation.json (the callbacks it had)
    "callbacks.measure._target_", "callbacks.generation._target_", "callbacks.generation.num_samples",
)  # fmt: skip


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
    preset: str | None = None  # the experiment config it ran (experiment=<preset>)
    ablation: str | None = None  # the ablation variant it ran (ablation=<variant>; analysis/ablation.py)
    problems: list[str] = field(default_factory=list)
    row: dict = field(default_factory=dict)

    def series(self, key: str) -> list[tuple[int, float]]:
        return self.metrics.get(key, [])


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
            raise MissingFileError(f"{raw} is not a directory (give run or multirun directories)")
        if _is_run(p):
            found.append(p)
            continue
        candidates = {d.parent for d in p.rglob(".hydra")} | {f.parent for f in p.rglob("config.yaml")}
        candidates |= {f.parent for f in p.rglob("status.json")}
        runs = [d for d in candidates if "wandb" not in d.relative_to(p).parts and _is_run(d)]
        if not runs:
            raise MissingFileError(f"{raw} holds no run directory (no .hydra/, config.yaml or status.json)")
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


def _read_json(path: Path, problems: list[str]) -> dict:
    """A JSON file of the run; a missing file gives {} with a problem noted, an unreadable one too."""
    if not path.is_file():
        problems.append(f"no {path.name}")
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        problems.append(f"{path.name} unreadable ({type(err).__name__}: {err})")
        return {}


def _read_config(run: Path, problems: list[str]) -> dict:
    for candidate in (run / "config.yaml", run / ".hydra" / "config.yaml"):
        if not candidate.is_file():
            continue
        try:
            cfg = OmegaConf.load(candidate)
        except (OSError, ValueError, OmegaConfBaseException) as err:
            problems.append(f"{candidate.relative_to(run)} unreadable ({type(err).__name__}: {err})")
            continue
        out = {}
        model = OmegaConf.select(cfg, "model", default=None, throw_on_resolution_failure=False)
        keys = [*CONFIG_KEYS, *(f"model.{k}" for k in (model if OmegaConf.is_dict(model) else ()))]
        for key in dict.fromkeys(keys):  # an unresolvable interpolation reads as absent
            value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
            if value is not None and not OmegaConf.is_config(value):
                out[key] = value
        return out
    problems.append("no config.yaml")
    return {}


def _read_overrides(path: Path, problems: list[str]) -> list[str]:
    overrides = path / ".hydra" / "overrides.yaml"
    if not overrides.is_file():
        return []
    try:
        return [str(o) for o in OmegaConf.to_container(OmegaConf.load(overrides))]
    except (OSError, ValueError, TypeError, OmegaConfBaseException) as err:
        problems.append(f".hydra/overrides.yaml unreadable ({type(err).__name__}: {err})")
        return []


def _read_choices(run: Path, groups: tuple[str, ...]) -> dict[str, str | None]:
    """Hydra's choice of each config group (.hydra/hydra.yaml): the experiment preset, the ablation variant."""
    hydra = run / ".hydra" / "hydra.yaml"
    try:
        cfg = OmegaConf.load(hydra) if hydra.is_file() else None
    except (OSError, ValueError, OmegaConfBaseException):
        cfg = None
    out: dict[str, str | None] = {}
    for group in groups:
        choice = None
        if cfg is not None:
            choice = OmegaConf.select(cfg, f"hydra.runtime.choices.{group}", default=None,
                                      throw_on_resolution_failure=False)  # fmt: skip
        out[group] = None if choice is None else str(choice)
    return out


def family(cfg: dict) -> str:
    """The run's model family from its config: seq2seq or gpt."""
    return "seq2seq" if "seq2seq" in str(cfg.get("model._target_", "")).lower() else "gpt"


def writes_generation(cfg: dict) -> bool:
    """Whether a run should leave generation.json: GPT runs unless their config turned GenerationMetrics off
    (callbacks.generation=null beside the other callbacks, or num_samples=0); seq2seq runs score translations."""
    off = cfg.get("callbacks.generation.num_samples") == 0 or (
        cfg.get("callbacks.measure._target_") is not None and cfg.get("callbacks.generation._target_") is None
    )
    return family(cfg) == "gpt" and not off


def read_run(path: Path) -> Run:
    run = Run(path=path)
    run.config = _read_config(path, run.problems)
    choices = _read_choices(path, ("experiment", "ablation"))
    run.preset, run.ablation = choices["experiment"], choices["ablation"]
    run.overrides = _read_overrides(path, run.problems)
    run.status = _read_json(path / "status.json", run.problems) if (path / "status.json").is_file() else {}
    if not run.overrides and run.status.get("overrides"):
        run.overrides = [str(o) for o in run.status["overrides"]]
    metrics = path / "csv" / "metrics.csv"
    if metrics.is_file():
        run.metrics = read_metrics(metrics)
    else:
        run.problems.append("no csv/metrics.csv")
    run.measure = _read_json(path / "measure.json", run.problems)
    if (path / "generation.json").is_file() or writes_generation(run.config):
        run.generation = _read_json(path / "generation.json", run.problems)
    return run


def _params_from_config(cfg: dict) -> int | None:
    """Parameter count from a GPT's config (every model field the run's config.yaml has), for runs that did not get
    to write measure.json."""
    import dataclasses

    from analysis.estimate import KNOWN_VOCAB
    from models.gpt import GPTConfig

    if family(cfg) != "gpt":
        return None
    fields = {f.name for f in dataclasses.fields(GPTConfig)}
    model = {k[len("model.") :]: v for k, v in cfg.items() if k.startswith("model.") and k[len("model.") :] in fields}
    vocab = model.get("vocab_size") or KNOWN_VOCAB.get(cfg.get("data.tokenizer"))
    try:
        model.update(vocab_size=int(vocab), block_size=int(model.get("block_size") or cfg["data.block_size"]))
        return GPTConfig(**model).num_params()
    except (KeyError, TypeError, ValueError):
        return None


def _labels(runs: list[Run]) -> None:
    """Label each run by the overrides that differ between runs (else its directory name). Job folders of several
    multiruns (each numbered from 0) are told apart by their multirun's last name part (`596f91/0`)."""
    sets = [dict(o.split("=", 1) for o in r.overrides if "=" in o) for r in runs]
    keys = sorted({k for s in sets for k in s})
    varying = [k for k in keys if len({s.get(k) for s in sets}) > 1]
    names = [r.path.name for r in runs]
    repeated = len(set(names)) < len(names)
    for run, s in zip(runs, sets):
        parts = [f"{k.split('.')[-1]}={s[k]}" for k in varying if k in s]
        name = run.path.name
        job = f"{run.path.parent.name.rsplit('_', 1)[-1]}/{name}" if repeated else name
        run.label = f"{job}: {' '.join(parts)}" if parts and name.isdigit() else (" ".join(parts) or job)


def summarise(run: Run) -> dict:
    """One table row: numbers from measure.json / generation.json, else from metrics.csv."""
    m, g, cfg = run.measure, run.generation.get("summary", {}), run.config
    val = [v for _, v in run.series("val/loss")]

    def from_csv(key: str, how) -> float | None:
        values = [v for _, v in run.series(key)]
        return how(values) if values else None

    layers = cfg.get("model.n_layer")
    if family(cfg) == "seq2seq" and cfg.get("model.n_enc_layer") is not None:
        layers = f"{cfg['model.n_enc_layer']}+{cfg.get('model.n_dec_layer')}"  # encoder + decoder
    test_bleu = run.series("test/bleu")
    row = {
        "run": run.label,
        "preset": run.preset,
        "tokenizer": _tokenizer(cfg),
        "batch_size": cfg.get("data.batch_size"),
        "block_size": cfg.get("data.block_size"),
        "n_embd": cfg.get("model.n_embd"),
        "n_head": cfg.get("model.n_head"),
        "n_layer": layers,
        "params": m.get("params") or _params_from_config(cfg),
        "steps": m.get("steps") or max((s for series in run.metrics.values() for s, _ in series), default=None),
        "best_val_loss": min(val) if val else None,
        "best_val_bleu": from_csv("val/bleu", max),
        "test_bleu": test_bleu[-1][1] if test_bleu else None,
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


def _tokenizer(cfg: dict) -> str | None:
    """data.tokenizer, marked "(separate)" when source and target have their own vocabularies."""
    name = cfg.get("data.tokenizer")
    return f"{name} (separate)" if name is not None and cfg.get("data.shared_vocab") is False else name


def load_runs(paths: list[str | Path]) -> list[Run]:
    runs = [read_run(p) for p in find_runs(paths)]
    _labels(runs)
    for run in runs:
        run.row = summarise(run)
    return runs
