"""Resuming needs nothing but the checkpoint: `python train.py ckpt_path=<run>/checkpoints/last.ckpt`.

Every checkpoint train.py writes keeps the command-line overrides of its run (`tformer_overrides`, secrets left
out), as nanoGPT's `init_from=resume` keeps its model args. Before Hydra composes the config, train.py calls
`resume_argv`: the arguments become the checkpoint run's overrides followed by the user's own, where an override
of the user replaces the run's override of the same key. So `python train.py ckpt_path=...` continues the run with
its own experiment, sizes and data, `trainer.max_steps=N` trains it longer, and an override that contradicts the
checkpoint (another `model.n_embd`) stops with the one-line error of training/checks.check_resume. Checkpoints
written before this (no `tformer_overrides`) take their run's `.hydra/overrides.yaml` when it is where train.py put
it (`<run>/.hydra/`, beside `<run>/checkpoints/`).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from training.secrets import is_secret_key, override_key

log = logging.getLogger("tformer")

OVERRIDES_KEY = "tformer_overrides"  # in checkpoints: the run's command-line overrides
# Overrides that describe this invocation, not the run: never carried from a checkpoint to its resumed run.
NOT_CARRIED = ("ckpt_path", "trust_checkpoint", "hydra")


def carried(overrides: list[str]) -> list[str]:
    """The overrides a resumed run takes from its checkpoint: not ckpt_path, hydra.*, or any secret."""
    keep = []
    for override in overrides:
        key = override_key(override)
        if key.split(".")[0].split("/")[0] in NOT_CARRIED or is_secret_key(key):
            continue
        keep.append(override)
    return keep


class RunOverrides(L.Callback):
    """Writes the run's command-line overrides into every checkpoint (what `resume_argv` reads back)."""

    def __init__(self, overrides: list[str] | None = None):
        if overrides is None:
            overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
        self.overrides = carried([str(o) for o in overrides])

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[OVERRIDES_KEY] = list(self.overrides)


def saved_overrides(ckpt_path: str | Path, *, trust: bool = False) -> list[str] | None:
    """The overrides of the run that wrote a checkpoint: from the checkpoint, else from <run>/.hydra/overrides.yaml;
    None when neither is there (or the file cannot be read: train.py's checks then say why)."""
    from training import safe_load

    path = Path(str(ckpt_path)).expanduser()
    try:
        ckpt = safe_load.load(path, trust=trust, mmap=True)
    except Exception:
        return None
    if isinstance(ckpt, dict) and isinstance(ckpt.get(OVERRIDES_KEY), list):
        return carried([str(o) for o in ckpt[OVERRIDES_KEY]])
    beside = path.resolve().parent.parent / ".hydra" / "overrides.yaml"
    if path.resolve().parent.name == "checkpoints" and beside.is_file():
        return carried([str(o) for o in OmegaConf.load(beside)])
    return None


def resume_argv(argv: list[str]) -> list[str]:
    """train.py's arguments with the checkpoint run's overrides put first (see the module docstring); unchanged
    without `ckpt_path=`, or when it names no readable checkpoint."""
    given = [a for a in argv if not a.startswith("-")]
    ckpt = next((a.split("=", 1)[1] for a in given if a.split("=", 1)[0] == "ckpt_path"), None)
    if not ckpt or ckpt == "null" or "," in ckpt:
        return argv
    trust = any(a in ("trust_checkpoint=true", "trust_checkpoint=True") for a in given)
    saved = saved_overrides(ckpt.strip("'\""), trust=trust)
    if not saved:
        return argv
    mine = {override_key(a) for a in given}
    added = [o for o in saved if override_key(o) not in mine]
    return [*added, *argv]


def announce(ckpt: dict, path: str) -> None:
    """Log which of the checkpoint run's overrides the resumed run carries, and keep Lightning's warning for a
    resumed ModelCheckpoint in a new folder (its best score is not reloaded there) off the console."""
    warnings.filterwarnings("ignore", message=r"The dirpath has changed from")
    overrides = ckpt.get(OVERRIDES_KEY) or []
    if HydraConfig.initialized():  # those this run took (the user's own override of a key replaces the run's)
        task = set(HydraConfig.get().overrides.task)
        overrides = [o for o in overrides if o in task]
    step = ckpt.get("global_step", "?")
    if overrides:
        log.info("Resuming %s (step %s) with its run's settings: %s", path, step, " ".join(overrides))
    else:
        log.info("Resuming %s (step %s)", path, step)
