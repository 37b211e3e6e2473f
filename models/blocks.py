"""Transformer building blocks shared by the GPT and the seq2seq model."""

from __future__ import annotations

import torch
from torch import nn

from models.attention import BACKENDS, Attention, Backend, KVCache


def check_config(c, int_fields: tuple[str, ...]) -> None:
    """The checks every model config shares, each error naming its `model.<field>` override: positive
    integer sizes, heads that divide the width, a dropout in [0, 1), a known attention backend."""
    for name in int_fields:
        value = getattr(c, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"model.{name} must be a positive integer, got {value!r}")
    if c.n_embd % c.n_head != 0:
        nearest = c.n_head * max(1, c.n_embd // c.n_head)
        raise ValueError(
            f"model.n_embd={c.n_embd} is not divisible by model.n_head={c.n_head}: "
            f"pick n_embd as a multiple of n_head (e.g. model.n_embd={nearest})"
        )
    if not 0.0 <= c.dropout < 1.0:
        raise ValueError(f"model.dropout must be in [0, 1), got {c.dropout}")
    if c.attention not in BACKENDS:
        raise ValueError(f"model.attention={c.attention!r} is unknown; choose one of {BACKENDS}")


class MLP(nn.Module):
    """Position-wise feed-forward: C -> hidden -> C with GELU."""

    def __init__(self, n_embd: int, hidden: int, *, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, hidden, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(hidden, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x)). Causal for the GPT."""

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        causal: bool = True,
        mlp_ratio: int = 4,
        backend: Backend = "sdpa",
    ):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = Attention(n_embd, n_head, dropout=dropout, bias=bias, causal=causal, backend=backend)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, mlp_ratio * n_embd, dropout=dropout, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        *,
        key_padding_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), key_padding_mask=key_padding_mask, cache=cache)
        return x + self.mlp(self.ln_2(x))
