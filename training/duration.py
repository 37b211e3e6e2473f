"""A rough duration estimate for training on this CPU, measured in a fraction of a second."""

from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta

import torch
from omegaconf import DictConfig, OmegaConf

from errors import ConfigError
from training.console import model_label

log = logging.getLogger("tformer")

# Share of the measured 512x512 matmul rate that a GPT training step reaches on CPU. Measured on 2 idle cores:
# gpt_small at batch 64 x block 256 ran 16-18 s/step where EFFICIENCY = 0.75 predicted 11.4 s/step; the small
# CPU recipe (4/4/128, batch 32 x block 64) runs about 1.4x faster than this predicts.
EFFICIENCY = 0.5


def matmul_flops_per_second(n: int = 512, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def estimate_seconds(flops_per_token: int, tokens_per_step: int, steps: int) -> float:
    return flops_per_token * tokens_per_step * steps / (matmul_flops_per_second() * EFFICIENCY)


def human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


ASK_ABOVE_S = 3600  # a CPU run estimated longer than this needs long_cpu_run=true or a yes at the prompt


def max_time_seconds(value) -> float | None:
    """trainer.max_time in seconds: Lightning's "DD:HH:MM:SS" or a dict of timedelta fields; None when unset."""
    if value is None:
        return None
    if isinstance(value, str):
        days, hours, minutes, seconds = (int(x) for x in value.split(":"))
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()
    return timedelta(**OmegaConf.to_container(value) if isinstance(value, DictConfig) else value).total_seconds()


FAR_ABOVE = 3  # a recipe's run whose estimate exceeds this multiple of the recipe's own duration is told so


def check_cpu_duration(cfg: DictConfig, model_cfg, *, ask=input) -> None:
    """On a machine without a GPU, say how long the run will take; above an hour, go on only with a yes:
    `long_cpu_run=true` on the command line, or a yes at the prompt when a person is at the terminal. A run
    nobody can answer for (a script, a sweep job, CI) stops with the way to go on instead of waiting.
    trainer.max_time bounds the estimate (a wall-time budget, e.g. sweeps=tutorials tutorials.budget=time).

    A CPU recipe states its own duration on 2 cores (`cpu_expected_s`, e.g. experiment=shakespeare_char_cpu):
    its runs get the estimate as a plain line while it stays within FAR_ABOVE x that duration, and a warning
    saying how far above it is, and what makes it so, beyond (a new corpus with GPT-2 tokens turns a 0.8M
    character model into one whose 50,257-row output layer is most of the work). The estimate counts the
    training steps only and the recipe's duration the whole run, so the comparison errs on the quiet side."""
    if torch.cuda.is_available() or not cfg.get("cpu_time_check", True):
        return
    steps = int(cfg.trainer.max_steps)
    if steps <= 0:
        return
    if "max_tokens" in cfg.data:  # token-budget batches (translation)
        tokens, seq, batch = int(cfg.data.max_tokens), int(cfg.data.max_len), f"<= {cfg.data.max_tokens} tokens"
        hint = "lower trainer.max_steps or train on a GPU (docs/translation.md)"
    else:
        tokens, seq = int(cfg.data.batch_size) * int(cfg.data.block_size), int(cfg.data.block_size)
        batch = f"batch {cfg.data.batch_size} x block {cfg.data.block_size}"
        hint = "for a CPU-sized run (about 2 minutes on 2 cores): python train.py experiment=shakespeare_char_modern"
    flops_per_token = model_cfg.flops_per_token(seq)
    seconds = estimate_seconds(flops_per_token, tokens, steps)
    name = model_label(model_cfg)
    message = f"No GPU found: {steps} steps of {name} at {batch} take roughly {human(seconds)} on this CPU"
    limit = max_time_seconds(cfg.trainer.get("max_time"))
    if limit is not None and limit < seconds:
        message = f"No GPU found: {name} at {batch} trains until trainer.max_time, {human(limit)}, on this CPU"
        seconds = limit
    expected = cfg.get("cpu_expected_s")
    if expected is not None:
        hint = _recipe_hint(model_cfg, flops_per_token)
    if expected is not None and seconds <= FAR_ABOVE * float(expected):
        log.info("%s (this recipe: about %s on 2 cores)", message, human(float(expected)))
    elif expected is not None:
        log.warning("%s: %.0fx this recipe's %s on 2 cores (cpu_expected_s=%s); %s", message,
                    seconds / float(expected), human(float(expected)), expected, hint)  # fmt: skip
    else:
        log.warning("%s; %s", message, hint)
    if seconds <= ASK_ABOVE_S or cfg.get("long_cpu_run", False):
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise ConfigError(f"{message}: pass long_cpu_run=true to train anyway, or {hint}")
    if ask("Train anyway? [y/N] ").strip().lower() not in ("y", "yes"):
        raise SystemExit("Not training. " + hint[0].upper() + hint[1:])


def _recipe_hint(model_cfg, flops_per_token: int) -> str:
    """Why a run costs far more than its recipe, and the way back: its output layer, when that is most of the work
    (a GPT-2 vocabulary on a model sized for characters), else the overrides."""
    vocab, width = getattr(model_cfg, "vocab_size", None), getattr(model_cfg, "n_embd", None)
    gpt = "n_layer" in getattr(model_cfg, "__dataclass_fields__", {})
    share = 6 * vocab * width / flops_per_token if gpt and vocab and width else 0  # the output layer, fwd + bwd
    if share >= 0.5:
        return (f"the output layer over a {vocab:,}-token vocabulary is {share:.0%} of the work: data.tokenizer=char "
                f"keeps it small (or train on a GPU)")  # fmt: skip
    return "the overrides made the model or its batches bigger than the recipe's: undo them, or train on a GPU"
