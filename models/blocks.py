"""Transformer building blocks shared by the GPT and the seq2seq model."""

from __future__ import annotations

import torch
from torch import nn

from models.attention import Attention, Backend, KVCache


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
