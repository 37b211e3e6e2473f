"""OpenAI's GPT-2 weights in models.gpt.GPT, from the Hugging Face `GPT2LMHeadModel` checkpoint, converted as
nanoGPT's `GPT.from_pretrained` does (the parameter names are the same: nanoGPT kept OpenAI's).

`model.init_from` is one of OpenAI's four checkpoints (gpt2, gpt2-medium, gpt2-large, gpt2-xl: their sizes
are set from GPT2_SIZES) or the directory of any GPT2LMHeadModel saved with `save_pretrained` (its sizes
must match the model config; the load names any that differ). Either way the config takes GPT-2's
architecture (GPT2_ARCHITECTURE: pre-LN, learned positions, the tanh GELU, a tied bias-free head) and
keeps its own dropout and block_size (at most the checkpoint's 1024 positions; the position table is
cropped, as nanoGPT's crop_block_size does). The vocabulary is the data's, and must be GPT-2's 50257 BPE
tokens (data=shakespeare_bpe).

Loading needs `transformers` (pip install -e '.[pretrained]'). The named checkpoints come from the
Hugging Face Hub, or from its cache with HF_HUB_OFFLINE=1; without network access, download them once
elsewhere (`hf download gpt2 --local-dir /models/gpt2`) and pass the directory:
model=gpt2 model.init_from=/models/gpt2.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from errors import ConfigError

log = logging.getLogger("tformer")

GPT2_SIZES = {  # (n_layer, n_head, n_embd)
    "gpt2": (12, 12, 768),  # 124M
    "gpt2-medium": (24, 16, 1024),  # 350M
    "gpt2-large": (36, 20, 1280),  # 774M
    "gpt2-xl": (48, 25, 1600),  # 1558M
}
GPT2_CONTEXT = 1024
# GPT-2's architecture at every size. HF's "gelu_new" is the tanh approximation of GELU (nanoGPT uses the
# exact one, so its logits differ slightly from OpenAI's).
GPT2_ARCHITECTURE = dict(
    norm="pre",
    positions="learned",
    activation="gelu_tanh",
    d_ff=None,
    n_kv_head=None,
    normalization="layernorm",
    qk_norm=False,
    logit_softcap=None,
    bias=True,
    tie_embeddings=True,
    head_bias=False,
    embedding_scale=False,
)
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")  # HF's names of the tanh approximation
# OpenAI's Conv1D stores (in, out); nn.Linear stores (out, in).
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
HF_BUFFERS = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers of older transformers versions


def pretrained_fields(cfg) -> dict:
    """The fields GPT-2's weights dictate for a GPTConfig with `init_from` (logging those that change): GPT-2's
    architecture, and a named checkpoint's sizes. The vocabulary stays the data's (load_gpt2 checks it)."""
    if not isinstance(cfg.init_from, str) or not cfg.init_from:
        raise ConfigError(
            f"model.init_from must be a GPT-2 name {tuple(GPT2_SIZES)} or a directory, got {cfg.init_from!r}"
        )
    fields = dict(GPT2_ARCHITECTURE)
    if cfg.init_from in GPT2_SIZES:
        n_layer, n_head, n_embd = GPT2_SIZES[cfg.init_from]
        fields.update(n_layer=n_layer, n_head=n_head, n_embd=n_embd)
        if isinstance(cfg.block_size, int) and cfg.block_size > GPT2_CONTEXT:
            raise ConfigError(
                f"model.block_size={cfg.block_size} exceeds the {GPT2_CONTEXT} positions of model.init_from="
                f"{cfg.init_from}: use data.block_size <= {GPT2_CONTEXT}"
            )
    changed = {k: (getattr(cfg, k), v) for k, v in fields.items() if getattr(cfg, k) != v}
    if changed:
        log.info(
            "model.init_from=%s sets %s",
            cfg.init_from,
            ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()),
        )
    return fields


def convert_gpt2_state_dict(hf_state: dict[str, torch.Tensor], *, block_size: int | None = None) -> dict:
    """A GPT2LMHeadModel state dict as models.gpt.GPT's: Conv1D weights transposed, the mask buffers dropped,
    the position table cropped to block_size. Pure torch: no transformers needed."""
    out = {}
    for key, value in hf_state.items():
        if key.endswith(HF_BUFFERS):
            continue
        out[key] = value.t() if key.endswith(CONV1D_WEIGHTS) else value
    out.setdefault("lm_head.weight", out["transformer.wte.weight"])  # tied: some checkpoints store it once
    if block_size is not None:
        out["transformer.wpe.weight"] = out["transformer.wpe.weight"][:block_size]
    return out


def check_hf_config(cfg, hf, source: str) -> None:
    """The GPT config must have the checkpoint's sizes and GPT-2's architecture; one error lists every difference."""
    wanted = dict(n_layer=hf.n_layer, n_head=hf.n_head, n_embd=hf.n_embd, vocab_size=hf.vocab_size)
    problems = [
        f"model.{k}={getattr(cfg, k)} (the weights have {v})" for k, v in wanted.items() if getattr(cfg, k) != v
    ]
    if cfg.hidden != (hf.n_inner or 4 * hf.n_embd):
        problems.append(f"model.d_ff={cfg.d_ff} (the weights have an MLP of {hf.n_inner or 4 * hf.n_embd})")
    if cfg.block_size > hf.n_positions:
        problems.append(f"model.block_size={cfg.block_size} (the weights have {hf.n_positions} positions)")
    if hf.activation_function not in TANH_GELUS or hf.layer_norm_epsilon != 1e-5 or not hf.scale_attn_weights:
        problems.append(
            f"the checkpoint's activation_function={hf.activation_function!r}, layer_norm_epsilon="
            f"{hf.layer_norm_epsilon}, scale_attn_weights={hf.scale_attn_weights} are not GPT-2's (supported: "
            f"a tanh GELU, 1e-5, true)"
        )
    if getattr(hf, "scale_attn_by_inverse_layer_idx", False):
        problems.append("the checkpoint scales attention by 1/layer index (scale_attn_by_inverse_layer_idx)")
    if problems:
        hint = " (GPT-2's weights need GPT-2's BPE: data=shakespeare_bpe)" if cfg.vocab_size != hf.vocab_size else ""
        raise ConfigError(f"model.init_from={source} does not fit the model config: {'; '.join(problems)}{hint}")


def load_gpt2(model: nn.Module, source: str | None = None) -> None:
    """Copy the weights of a GPT2LMHeadModel (a name in GPT2_SIZES, a local directory or a Hub id) into `model`
    (a models.gpt.GPT whose config fits them)."""
    source = source or model.config.init_from
    try:
        from transformers import GPT2LMHeadModel
    except ImportError as err:
        raise ImportError("model.init_from needs Hugging Face transformers: pip install -e '.[pretrained]'") from err
    try:
        hf = GPT2LMHeadModel.from_pretrained(source)
    except OSError as err:
        raise OSError(
            f"model.init_from={source}: no GPT2LMHeadModel could be loaded ({err}). Without network access, pass "
            f"a local directory (save_pretrained output or a downloaded checkpoint), or set HF_HUB_OFFLINE=1 "
            f"with the weights already in the Hugging Face cache"
        ) from err
    check_hf_config(model.config, hf.config, source)
    state = convert_gpt2_state_dict(hf.state_dict(), block_size=model.config.block_size)
    rows = model.config.padded_vocab_size  # model.vocab_multiple: extra rows (never targets nor sampled) stay 0
    for key in ("transformer.wte.weight", "lm_head.weight"):
        if key in state and state[key].size(0) < rows:
            state[key] = torch.cat([state[key], state[key].new_zeros(rows - state[key].size(0), state[key].size(1))])
    model.load_state_dict(state)  # strict: every key and shape must match
    log.info("Loaded %s (%d tensors) into the GPT", source, len(state))
