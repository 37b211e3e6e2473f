"""Parameters and training FLOPs of a model config, read off its module built on the meta device.

On the meta device every parameter has its shape and no storage, so a 175B-parameter GPT is counted in about
a second, and every option of models/ is counted as it is built: nothing here lists model variants. The one
count and the one FLOP formula behind `ModelConfig.num_params()` / `flops_per_token()`, estimate.py, MFU, the
reports and the benchmarks. The memory estimate is models/memory.py.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from models.attention import Attention

COMPONENTS: dict[str, str] = {
    "token_embedding": "token embedding (the output head too when tied)",
    "position_embedding": "position embedding (0 for fixed or rotary positions)",
    "attn_query": "attention query",
    "attn_key": "attention key",
    "attn_value": "attention value",
    "attn_output": "attention output",
    "mlp_up": "MLP up (C -> d_ff, 4C by default; gate and up for a gated MLP)",
    "mlp_down": "MLP down (d_ff -> C)",
    "norms": "norms",
    "head": "output head (its weight counts 0 when tied to the token embedding; its bias if any)",
    "other": "other parameters",
}

# A parameter's role, from the name of the module that holds it (models/ names them so in every family).
ROLES: dict[str, tuple[str, str]] = {
    "wte": ("token_embedding", "embedding W_E"),
    "wpe": ("position_embedding", "position embedding W_P"),
    "attn.c_proj": ("attn_output", "output W_O"),
    "mlp.c_fc": ("mlp_up", "MLP up W_1"),
    "mlp.c_proj": ("mlp_down", "MLP down W_2"),
    "lm_head": ("head", "unembedding W_U"),
    "src_emb": ("token_embedding", "source embedding"),
    "tgt_emb": ("token_embedding", "target embedding"),
    "enc_pos": ("position_embedding", "source positions"),
    "dec_pos": ("position_embedding", "target positions"),
    "cross_attn.c_q": ("attn_query", "cross-attention query"),
    "cross_attn.c_kv": ("attn_key", "cross-attention key and value"),
    "cross_attn.c_proj": ("attn_output", "cross-attention output"),
}
QKV = (("attn_query", "query W_Q"), ("attn_key", "key W_K"), ("attn_value", "value W_V"))
NORMS = (nn.LayerNorm, nn.RMSNorm)
_LAYER = re.compile(r"\.(\d+)\.")  # the block index in a parameter's name (transformer.h.3.attn...)


@dataclass(frozen=True)
class MatrixRow:
    """One row of the per-matrix table: a weight (the same in every layer that has it), or a block's biases or
    norms together."""

    name: str
    shape: str
    per_layer: int
    layers: int

    @property
    def total(self) -> int:
        return self.per_layer * self.layers


@dataclass(frozen=True)
class Inventory:
    """Everything counted on the meta module of one config."""

    total: int  # distinct parameters (a tied tensor once)
    tensors: int  # distinct parameter tensors (AdamW keeps a step counter for each)
    embedding: int  # in tensors first named as an embedding table (what non_embedding leaves out)
    lookups: int  # in tensors only an embedding holds (read, not multiplied: outside the 6·N of the FLOPs)
    linear: int  # in tensors a Linear holds (autocast keeps a low-precision copy of each)
    attention_width: int  # the query width (heads x head dim) summed over every attention module
    components: dict[str, int]  # parameters per key of COMPONENTS
    rows: tuple[MatrixRow, ...]  # the per-matrix table (biases and norms of a block grouped)


class _SkipInit(TorchFunctionMode):
    """torch.nn.init's functions return their tensor untouched: a meta tensor has nothing to fill, and filling
    one runs torch's Python reference kernels, whose first use imports torch._dynamo (about 1 s of start-up)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init":
            return kwargs["tensor"] if "tensor" in kwargs else args[0]
        return func(*args, **kwargs)


def meta_module(cfg) -> nn.Module:
    """The config's module on the meta device: shapes, no memory, no init work."""
    with torch.device("meta"), _SkipInit():
        return cfg.build()


@functools.lru_cache(maxsize=64)
def inventory(cfg) -> Inventory:
    """Count the meta module of a (frozen, hashable) model config once."""
    model = meta_module(cfg)
    owners: dict[int, list[nn.Module]] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            owners.setdefault(id(p), []).append(module)
    distinct = dict(model.named_parameters())  # a tied tensor under its first name
    first = {id(p): name for name, p in distinct.items()}
    total = sum(p.numel() for p in distinct.values())
    embedding = sum(p.numel() for p in distinct.values() if isinstance(owners[id(p)][0], nn.Embedding))
    lookups = sum(p.numel() for p in distinct.values() if all(isinstance(m, nn.Embedding) for m in owners[id(p)]))
    linear = sum(p.numel() for p in distinct.values() if any(isinstance(m, nn.Linear) for m in owners[id(p)]))
    width = 0
    for m in model.modules():
        if isinstance(m, Attention):
            width += m.n_head * m.head_dim
        elif isinstance(m, nn.MultiheadAttention):
            width += m.embed_dim
    components = dict.fromkeys(COMPONENTS, 0)
    for name, p in distinct.items():
        for component, _, numel, _ in _parts(model, name.rsplit(".", 1)[0], p):
            components[component] += numel
    return Inventory(total, len(distinct), embedding, lookups, linear, width, components, _rows(model, first))


def _rows(model: nn.Module, first: dict[int, str]) -> tuple[MatrixRow, ...]:
    """The per-matrix table: each weight (q, k and v of a fused projection apart) a row over the layers that have
    it; a block's biases and its norms a row each; a tied weight a row of 0 where it is named again."""
    rows: dict[tuple, dict] = {}  # (section, stack, label) -> shape, {layer: count}, first position
    after_blocks = False
    for order, (name, p) in enumerate(model.named_parameters(remove_duplicate=False)):
        match = _LAYER.search(name)
        layer, stack = (int(match[1]), name[: match.start()]) if match else (None, "")
        after_blocks = after_blocks or layer is not None
        owner_path, kind = name.rsplit(".", 1)
        parts = _parts(model, owner_path, p)
        if first[id(p)] != name:  # a tied weight: counted where it is first named
            tied_to = _parts(model, first[id(p)].rsplit(".", 1)[0], p)[0][1]
            parts = [(parts[0][0], f"{parts[0][1]} (= {tied_to}, tied)", 0, parts[0][3])]
        for _, label, numel, shape in parts:
            norm = isinstance(model.get_submodule(owner_path), NORMS)
            if layer is None:
                section = 4 if after_blocks else 0
                label = ("final norm" if after_blocks else "norm") if norm else label
                label = f"{label} bias" if kind == "bias" and not norm else label
            else:
                section, label = (3, "norms") if norm else (2, "biases") if kind == "bias" else (1, label)
            shape = "" if norm or kind == "bias" else shape  # grouped rows: a count of values
            row = rows.setdefault((section, stack, label), dict(shape=shape, layers={}, at=order))
            row["layers"][layer] = row["layers"].get(layer, 0) + numel
    stacks = {stack for _, stack, _ in rows} - {""}
    out = []
    for (_, stack, label), row in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[1]["at"])):
        counts = list(row["layers"].values())
        per_layer, layers = (counts[0], len(counts)) if len(set(counts)) == 1 else (sum(counts), 1)
        name = f"{label} ({stack})" if len(stacks) > 1 and stack else label
        out.append(MatrixRow(name, row["shape"] or f"{per_layer} values", per_layer, layers))
    return tuple(out)


def _parts(model: nn.Module, owner_path: str, p: torch.Tensor) -> list[tuple[str, str, int, str]]:
    """(component, label, numel, shape) of a parameter; a fused q/k/v projection gives three."""
    owner = model.get_submodule(owner_path)
    if isinstance(owner, NORMS):
        return [("norms", "norms", p.numel(), "")]
    parent = model.get_submodule(owner_path.rsplit(".", 1)[0]) if "." in owner_path else None
    if isinstance(parent, Attention) and owner is getattr(parent, "c_attn", None):
        cols = p.size(1) if p.dim() == 2 else 1
        return [
            (component, label, width * cols, f"{cols} x {width} ({heads} heads x {parent.head_dim})")
            for (component, label), width, heads in zip(QKV, parent.qkv_widths, parent.qkv_heads)
        ]
    component, label = _role(owner_path) or ("other", owner_path)
    dims = tuple(p.shape)[::-1] if isinstance(owner, nn.Linear) else tuple(p.shape)  # Linear: fan_in x fan_out
    return [(component, label, p.numel(), " x ".join(map(str, dims)))]


def _role(owner_path: str) -> tuple[str, str] | None:
    for suffix, role in ROLES.items():
        if owner_path == suffix or owner_path.endswith("." + suffix):
            return role
    return None


# ---------------------------------------------------------------------------------------------------------


def num_params(cfg, *, non_embedding: bool = False) -> int:
    """The model's parameters (a tied tensor once); non_embedding leaves out the embedding tables (nanoGPT's count:
    the token table even when the head shares it)."""
    inv = inventory(cfg)
    return inv.total - inv.embedding if non_embedding else inv.total


def num_param_tensors(cfg) -> int:
    return inventory(cfg).tensors


def matmul_params(cfg) -> int:
    """The N of 6·N: every parameter but the lookups (position tables; token tables not tied to a head)."""
    inv = inventory(cfg)
    return inv.total - inv.lookups


def linear_params(cfg) -> int:
    """Parameters of the Linear layers (a tied head's weight included): what autocast copies to bf16/fp16."""
    return inventory(cfg).linear


def param_counts(cfg) -> dict[str, int]:
    """Parameters per component of COMPONENTS (weights and biases; a tied head counts 0); sums to num_params."""
    return dict(inventory(cfg).components)


def matrix_breakdown(cfg) -> list[MatrixRow]:
    """The per-matrix table usually drawn for GPT-3: embedding, q, k, v, output, MLP, unembedding."""
    return list(inventory(cfg).rows)


def flops_per_token(cfg, seq_len: int) -> int:
    """Training FLOPs per token, forward + backward: 6·N + 12·T·Σ(H·D) (PaLM appendix B; nanoGPT's MFU).

    N counts every parameter in a matmul (all but the lookup tables; a tied head once), so grouped keys and
    values or a gated MLP change it as they change the module. 12·T·H·D per attention module is the score and
    value matmuls of its H·D-wide queries over T keys (12·L·T·C for the GPT; the seq2seq decoder's
    cross-attention counts too, over a source of the same length).
    """
    inv = inventory(cfg)
    return 6 * (inv.total - inv.lookups) + 12 * seq_len * inv.attention_width


def human_count(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"
