"""torch.compile for the families' models: the whole model as one graph, or each transformer block.

Both compile in place (nn.Module.compile), so parameter names and checkpoints are those of the plain model.
`compile_scope=model` compiles one graph of the whole forward (fastest steps, the longest compile).
`compile_scope=blocks` compiles every `models.blocks.Block` in place; identical blocks share one compiled
graph (PyTorch's "regional compilation"), so the compile costs about one layer's instead of the whole
model's, which matters for runs of a minute or less. Sampling and beam search run eagerly either way.
"""

from __future__ import annotations

import contextlib
import sys

import torch
from torch import nn

from errors import ConfigError

SCOPES = ("model", "blocks")
MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def check_compile_options(scope: str, mode: str | None) -> None:
    if scope not in SCOPES:
        raise ConfigError(f"module.compile_scope={scope!r} is unknown; choose one of {list(SCOPES)}")
    if mode not in MODES:
        raise ConfigError(f"module.compile_mode={mode!r} is unknown; choose one of {list(MODES)}")
    if scope == "blocks" and not hasattr(torch.compiler, "set_stance"):
        raise ConfigError("module.compile_scope=blocks needs torch>=2.6 (torch.compiler.set_stance); use model")


def compile_model(model: nn.Module, *, scope: str = "model", mode: str | None = None) -> None:
    """Compile `model` in place (nn.Module.compile): the whole forward (scope=model) or each Block (scope=blocks).
    In place, parameter names stay as they are, so checkpoints never hold `_orig_mod.` keys."""
    from models.blocks import Block

    check_compile_options(scope, mode)
    if scope == "model":
        model.compile(mode=mode)
        return
    for module in model.modules():
        if isinstance(module, Block):
            module.compile(mode=mode)


def eager() -> contextlib.AbstractContextManager:
    """Run compiled code eagerly inside (sampling, decoding: shapes change every token). Nothing to do while
    torch._dynamo's eval_frame was never imported: nothing was compiled (and asking would import torch._dynamo,
    which training/lazy_dynamo.py defers)."""
    if "torch._dynamo.eval_frame" in sys.modules and hasattr(torch.compiler, "set_stance"):
        return torch.compiler.set_stance("force_eager")
    return contextlib.nullcontext()
