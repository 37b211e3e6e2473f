"""Average checkpoint files into one (`python average.py a.ckpt b.ckpt c.ckpt -o averaged.ckpt`).

The averaged file keeps the last input's model config, tokenizer and family tag (tools load it like any
checkpoint of the run) and drops optimizer and scheduler states, which belong to no averaged weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from datamodules.files import atomic_write
from errors import ConfigError
from lightning_modules.callbacks.averaging import average_state_dicts
from training.checkpoint import read_checkpoint

TRAINING_STATE = ("optimizer_states", "lr_schedulers", "callbacks", "loops")


def average_checkpoints(paths: list[str | Path]) -> dict:
    """One checkpoint whose weights are the mean of those in `paths` (same family and model config)."""
    if not paths:
        raise ConfigError("give at least one checkpoint to average")
    ckpts = [read_checkpoint(p, field="checkpoint", opt_in="--trust-checkpoint") for p in paths]
    last = ckpts[-1]
    for path, ckpt in zip(paths, ckpts):
        if ckpt["tformer_family"] != last["tformer_family"]:
            raise ConfigError(f"{path} holds a {ckpt['tformer_family']} model, {paths[-1]} a {last['tformer_family']}")
        if ckpt.get("hyper_parameters", {}).get("model") != last.get("hyper_parameters", {}).get("model"):
            raise ConfigError(f"{path} holds another model configuration than {paths[-1]}: cannot average them")
    out = {k: v for k, v in last.items() if k not in TRAINING_STATE}
    out["state_dict"] = average_state_dicts([c["state_dict"] for c in ckpts])
    out["averaged_from"] = [str(p) for p in paths]
    return out


def save_average(paths: list[str | Path], output: str | Path) -> Path:
    """Average `paths` into `output` (written atomically: a reader never sees half a file)."""
    output = Path(output)
    if output.resolve() in {Path(p).resolve() for p in paths}:
        raise ConfigError(f"output {output} is one of the inputs; write the average to a new file")
    checkpoint = average_checkpoints(paths)
    output.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(output, lambda tmp: torch.save(checkpoint, tmp))
