"""What a run prints, and nothing else: each line once, no adverts, no warning a user cannot act on; the
resolved sizes as a tree; at the end, where everything went. (The progress bar, counted in optimizer steps,
is lightning_modules/callbacks/progress.py.)"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("tformer")

# Lines Lightning prints that no user can act on: its litlogger advertisement.
ADVERTS = ("litlogger",)
# Warnings raised inside the libraries, about their own use of deprecated APIs.
LIBRARY_WARNINGS = (r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",)
# The groups of the config tree printed at the start of a run, and the keys left out of it.
TREE_GROUPS = ("data", "model", "optim", "trainer")
TREE_SKIP = ("_target_", "default_root_dir", "cache_dir", "url", "strategy")


class ConsoleFormatter(logging.Formatter):
    """INFO lines as plain messages; warnings and errors prefixed by their level (conf/hydra/default.yaml)."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno <= logging.INFO else f"{record.levelname}: {message}"


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(word in record.getMessage() for word in ADVERTS)


# Loggers of this project: its warnings are about the config and the data, the same in every rank.
OWN_LOGGERS = ("tformer", "training", "lightning_modules", "datamodules", "models", "analysis")


class ExtraRankConsole(logging.Filter):
    """The console of a distributed run's extra ranks (conf/hydra/default.yaml): errors, and warnings from the
    libraries (which may be the rank's own), but not the project's warnings, which rank zero already printed."""

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name.split(".", 1)[0] in OWN_LOGGERS
        return record.levelno != logging.WARNING or not own


def quiet_libraries() -> None:
    """Lightning's own console handler goes (its lines reach Hydra's handlers through the root logger, once),
    so do its advert and the libraries' internal deprecation warnings."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]:
            logger.removeHandler(handler)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())
    for pattern in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


# Model fields that say how big a model is, in the order a run prints them; the presets that name sizes.
SIZE_FIELDS = ("n_layer", "n_enc_layer", "n_dec_layer", "n_head", "n_embd", "d_ff")
MODEL_PRESETS = Path(__file__).resolve().parents[1] / "conf" / "model"


def model_label(model_cfg) -> str:
    """The model as a run names it: `gpt_nano (n_layer=3, n_head=4, n_embd=64)` while its sizes are its
    preset's, `GPT (n_layer=4, n_head=4, n_embd=128)` once they are not (a preset's name never stands for
    sizes it does not have); a name that is no preset (model.name=mine) is kept."""
    sizes = ", ".join(f"{k}={getattr(model_cfg, k)}" for k in SIZE_FIELDS if getattr(model_cfg, k, None) is not None)
    preset = preset_sizes(model_cfg.name)
    if preset is None or all(getattr(model_cfg, k, None) == v for k, v in preset.items()):
        return f"{model_cfg.name} ({sizes})"
    return f"{type(model_cfg).__name__.removesuffix('Config')} ({sizes})"


def preset_sizes(name: str, presets: Path = MODEL_PRESETS) -> dict | None:
    """The SIZE_FIELDS a conf/model preset sets (following the presets it builds on); None for no preset."""
    path = presets / f"{name}.yaml"
    if not name or not path.is_file():
        return None
    node = OmegaConf.load(path)
    sizes: dict = {}
    for base in node.get("defaults") or []:
        if isinstance(base, str) and base != "_self_":  # another preset of the group (gpt_nano: gpt_small)
            sizes.update(preset_sizes(base, presets) or {})
    sizes.update({k: node[k] for k in SIZE_FIELDS if k in node})
    return sizes


def config_tree(cfg: DictConfig) -> str:
    """The resolved sizes of the run as an indented tree (rich), one line per value."""
    from rich.console import Console
    from rich.tree import Tree

    tree = Tree("config (full: <run>/config.yaml)")
    for group in TREE_GROUPS:
        node = cfg.get(group)
        if node is None:
            continue
        branch = tree.add(f"{group}: {node.get('name', '')}".rstrip(": "))
        for key, value in OmegaConf.to_container(node, resolve=True).items():
            if key not in TREE_SKIP and key != "name" and not isinstance(value, (dict, list)):
                branch.add(f"{key}: {value}")
    console = Console(width=120, force_terminal=False, no_color=True)
    with console.capture() as captured:
        console.print(tree)
    return captured.get().rstrip()


def outputs_summary(out: Path) -> str:
    """Where everything went: the run directory's files, one line each (what exists)."""
    entries = [
        ("config.yaml", "the resolved config"),
        ("checkpoints/best.ckpt", "best weights (lowest val/loss, or the recipe's monitor)"),
        ("checkpoints/last.ckpt", "latest weights: resume with ckpt_path="),
        ("csv/metrics.csv", "every logged metric"),
        ("samples.txt", "text sampled from the best weights"),
        ("translations.txt", "example translations after each validation"),
        ("test_bleu.txt", "test BLEU with its sacreBLEU signature"),
        ("measure.json", "tokens/s, MFU, step and validation time, memory"),
        ("generation.json", "generation metrics: time per sample, word accuracy"),
        ("train.log", "this log"),
    ]
    lines = [f"Outputs in {out.resolve()}:"]
    lines += [f"  {name:<24} {what}" for name, what in entries if (out / name).exists()]
    for run in sorted((out / "wandb").glob("offline-run-*")) if (out / "wandb").is_dir() else []:
        lines.append(f"  {'wandb/':<24} the W&B run (offline): `wandb sync {run}` uploads it,")
        lines.append(f"  {'':<24} `wandb leet {run.parent}` shows it in the terminal, no account needed")
    return "\n".join(lines)
