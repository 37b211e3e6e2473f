"""What tformer-lab adds to Lightning's checkpoints, the format's version, and the migration of older versions.

Format 1 (`checkpoint["tformer_format"] == 1`): `tformer_family` (gpt | seq2seq), `tformer_rng` (the torch RNG
state when saved, so a resumed run draws the dropout masks the uninterrupted run draws), the LR schedule inside
the scheduler state (lightning_modules/optim.Schedule), `hyper_parameters` that rebuild model and tokenizer.
Format 0 (no `tformer_format` key): every checkpoint before format 1. Seq2seq checkpoints written before the
restructuring of commit 4cf3d91 name their decoder layers' parts self_attn / ln_2 (before cross-attention) /
ln_3 (before the MLP), where models.blocks.Block has attn / ln_cross / ln_2; `migrate` renames them. Format 0
state_dicts list every parameter twice, also under `_forward.` (the module's forward view, registered by mistake;
`_forward._orig_mod.` when compiled); `migrate` drops those.
tests/fixtures/checkpoints/ keeps small checkpoints of every format; tests/lightning_modules/test_checkpoints.py
loads them, so a change that breaks old checkpoints fails a test.
"""

from __future__ import annotations

import re

import torch

from errors import ConfigError

FORMAT = 1

# format 0 seq2seq decoder names -> Block's names (one pass: the old ln_2 becomes ln_cross, the old ln_3 ln_2)
_OLD_DECODER = re.compile(r"^(.*decoder\.\d+\.)(self_attn|ln_2|ln_3)\.")
_NEW_DECODER = {"self_attn": "attn", "ln_2": "ln_cross", "ln_3": "ln_2"}


def check_format(checkpoint: dict, *, field: str = "ckpt_path", path: str = "") -> int:
    """The checkpoint's format version; a version newer than this code reads raises, naming the fix."""
    version = checkpoint.get("tformer_format", 0)
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= FORMAT:
        raise ConfigError(
            f"{field}={path} has checkpoint format {version!r}, but this tformer-lab reads formats 0 to {FORMAT}: "
            f"it was written by a newer tformer-lab; update this checkout (git pull) to load it"
        )
    return version


def migrate(checkpoint: dict, family: str) -> None:
    """Bring an older checkpoint's state_dict to the current parameter names, in place."""
    version = check_format(checkpoint)
    state = checkpoint.get("state_dict", {})
    if version == 0:  # format 0 also listed every parameter under `_forward.` (the forward view, compiled or not)
        state = {k: v for k, v in state.items() if not k.startswith("_forward.")}
    old_decoder = version == 0 and family == "seq2seq" and any(".self_attn." in k or ".ln_3." in k for k in state)

    def current(key: str) -> str:
        key = key.replace("_orig_mod.", "")  # a torch.compile'd model saved elsewhere (any format)
        return _OLD_DECODER.sub(lambda m: m[1] + _NEW_DECODER[m[2]] + ".", key) if old_decoder else key

    checkpoint["state_dict"] = {current(k): v for k, v in state.items()}


def rng_state() -> dict:
    """The RNG states that training draws from (dropout): torch's CPU generator and the current CUDA device's."""
    cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
