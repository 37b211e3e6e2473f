"""Checkpoints are data, never code: every checkpoint this project reads is loaded with `weights_only=True`.

A checkpoint is a pickle, and a pickle can call any Python function while it loads (`os.system`, ...). PyTorch's
`weights_only=True` unpickler accepts tensors and plain containers only; what train.py writes needs nothing more
(Lightning's dict, hyperparameters as plain values, the LR schedule as its fields, RNG states as tensors:
tests/training/test_safe_load.py checks every kind of checkpoint the project writes and every committed
fixture). A file that needs more is refused with one line naming it, before any of it runs. `trust_checkpoint=true`
(average.py: `--trust-checkpoint`) loads such a file with full pickle, for old or foreign checkpoints whose source
the user trusts; it is set for the whole process (`trust_checkpoints`), so Lightning's own loading when it
resumes (training/checkpoint_io) follows it too.
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from errors import UserError

log = logging.getLogger("tformer")

OPT_IN = "trust_checkpoint=true"
_trusted = False  # trust_checkpoint=true for this process (set by the entry points)


class UntrustedCheckpointError(UserError):
    """A checkpoint that needs code to load (it names Python functions or classes beyond tensors and containers)."""


def trust_checkpoints(enabled: bool) -> None:
    """trust_checkpoint=true: load checkpoints that need code with full pickle (said once, as a warning)."""
    global _trusted
    if enabled and not _trusted:
        log.warning(
            "trust_checkpoint=true: a checkpoint that holds Python code will be loaded with full pickle, which runs "
            "that code; use it only for files you made or whose source you trust"
        )
    _trusted = bool(enabled)


def trusted() -> bool:
    return _trusted


def unsafe_globals(path: str | Path) -> list[str]:
    """The Python functions and classes a checkpoint file names beyond what weights_only allows ([] if none, or
    if the file is not one torch can list: an old-format pickle)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a zip checkpoint (the legacy format): torch.load's own error names the global
        return []


def load(path: str | Path, *, field: str = "ckpt_path", map_location: Any = "cpu", trust: bool | None = None,
         opt_in: str = OPT_IN, mmap: bool = False) -> Any:  # fmt: skip
    """torch.load `path` with weights_only=True; a file that needs code raises UntrustedCheckpointError (nothing of
    it runs) unless trust (default: trust_checkpoint of this process) allows full pickle."""
    trust = _trusted if trust is None else trust
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        if not trust and ("Unsupported global" in str(err) or unsafe_globals(path)):
            raise refused(path, field, err, opt_in) from None
        if not trust:
            raise  # not something torch reads as data (a damaged file, not a checkpoint): the caller names it
    log.warning("%s=%s needs code to load (%s): loaded with full pickle, as trust_checkpoint=true allows",
                field, path, ", ".join(unsafe_globals(path)) or "see torch.load")  # fmt: skip
    return torch.load(path, map_location=map_location, weights_only=False)


def refused(path: str | Path, field: str, err: Exception, opt_in: str = OPT_IN) -> UntrustedCheckpointError:
    names = sorted(unsafe_globals(path)) or re.findall(r"Unsupported global: GLOBAL (\S+)", str(err))[:1]
    what = ", ".join(names) or "Python objects"
    return UntrustedCheckpointError(
        f"{field}={path} was refused: it names code ({what}) that loading would run, and a checkpoint written by "
        f"train.py holds only tensors and plain values; nothing of it was run. If you made this file yourself or "
        f"trust its source, {opt_in} loads it with full pickle (which runs whatever code it holds)"
    )
