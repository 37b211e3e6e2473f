"""Load a LightningModule back from a checkpoint alone, with clear errors for wrong files."""

from __future__ import annotations

import pickle
from pathlib import Path

import lightning as L

from errors import ConfigError, MissingFileError
from lightning_modules.checkpoint_format import check_format
from training import safe_load
from training.families import module_for_family

# Keys tformer-lab adds to Lightning's checkpoint dict.
WANDB_ID_KEY = "tformer_wandb_run_id"  # the W&B run a resumed run continues (training/loggers.WandbRunId)


def read_checkpoint(path: str | Path, *, field: str = "ckpt_path", opt_in: str = safe_load.OPT_IN) -> dict:
    """Load a checkpoint on CPU as data (training/safe_load: weights_only); a missing or unreadable file, or one
    that needs code to load, raises naming `field`."""
    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise MissingFileError(f"{field}={path} does not exist (no such file)")
    try:
        ckpt = safe_load.load(p, field=field, opt_in=opt_in)
    except safe_load.UntrustedCheckpointError:
        raise
    except pickle.UnpicklingError as err:  # torch's text would suggest weights_only=False: not for a damaged file
        raise ConfigError(f"{field}={path} is not a readable PyTorch checkpoint (damaged, unfinished, or another "
                          f"kind of file)") from err  # fmt: skip
    except Exception as err:
        raise ConfigError(f"{field}={path} is not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "tformer_family" not in ckpt:
        raise ConfigError(f"{field}={path} is not a tformer-lab checkpoint (written by train.py)")
    check_format(ckpt, field=field, path=str(path))
    return ckpt


def check_family(ckpt: dict, family: str, *, field: str = "ckpt_path", path: str = "") -> None:
    found = ckpt["tformer_family"]
    if found != family:
        raise ConfigError(f"{field}={path} holds a {found} model, but this needs a {family} checkpoint")


def load_module(
    path: str | Path, family: str | None, *, field: str = "ckpt_path", device: str = "cpu"
) -> L.LightningModule:
    """Rebuild the model (and its tokenizer) from the hyperparameters saved in the checkpoint; family None takes
    whichever family the checkpoint holds."""
    ckpt = read_checkpoint(path, field=field)
    family = family or ckpt["tformer_family"]
    check_family(ckpt, family, field=field, path=str(path))
    hparams = dict(ckpt["hyper_parameters"])
    hparams["compile"] = False
    module = module_for_family(family)(**hparams)
    module.on_load_checkpoint(ckpt)
    module.load_state_dict(ckpt["state_dict"])
    return module.to(device).eval()
