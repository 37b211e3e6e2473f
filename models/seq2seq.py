"""Seq2Seq: the "Attention is All You Need" encoder-decoder, built from the GPT's Attention and MLP.

Shapes: B batch, S source length, T target length, C = n_embd, V = vocab_size, H = n_head.
Masks: src_pad_mask (B, S) is True at padded source positions. Target padding needs no mask: the
decoder is causal and targets are right-padded, so no real position ever attends to a padded one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from models import sizing
from models.attention import KVCache
from models.blocks import Block, ModelConfig

POSITIONS = ("sinusoidal", "learned")
NORMS = ("pre", "post")


@dataclass
class Seq2SeqConfig(ModelConfig):
    """Every size of the encoder-decoder. Validated on construction, errors name the config field."""

    vocab_size: int = 8000  # joint source/target vocabulary (set from the tokenizer by train.py)
    max_len: int = 256  # most tokens per sentence on either side (positions)
    n_enc_layer: int = 6
    n_dec_layer: int = 6
    n_head: int = 8
    n_embd: int = 512
    d_ff: int = 2048  # hidden size of the position-wise MLP
    dropout: float = 0.1
    bias: bool = True
    positions: str = "sinusoidal"  # sinusoidal | learned
    norm: str = "pre"  # pre (stable, default) | post (the paper's)
    tie_embeddings: bool = True  # one embedding for source, target and the output layer
    attention: str = "sdpa"  # sdpa | flash | math
    name: str = "seq2seq"  # a label for logs and reports

    integer_fields = ("vocab_size", "max_len", "n_enc_layer", "n_dec_layer", "n_head", "n_embd", "d_ff")
    count_params = sizing.seq2seq_num_params
    count_flops = sizing.seq2seq_flops_per_token  # per target token, a source of the same length

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.positions not in POSITIONS:
            raise ValueError(f"model.positions={self.positions!r} is unknown; choose one of {POSITIONS}")
        if self.norm not in NORMS:
            raise ValueError(f"model.norm={self.norm!r} is unknown; choose one of {NORMS}")


def sinusoidal_positions(max_len: int, n_embd: int) -> torch.Tensor:
    """The paper's fixed encodings: sin on even, cos on odd channels -> (max_len, C)."""
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, n_embd, 2, dtype=torch.float32) * (-math.log(10000.0) / n_embd))
    pe = torch.zeros(max_len, n_embd)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: n_embd // 2])
    return pe


class Seq2Seq(nn.Module):
    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = c = config
        self.src_emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.tgt_emb = self.src_emb if c.tie_embeddings else nn.Embedding(c.vocab_size, c.n_embd)
        if c.positions == "learned":
            self.enc_pos = nn.Embedding(c.max_len, c.n_embd)
            self.dec_pos = nn.Embedding(c.max_len, c.n_embd)
        else:
            self.register_buffer("pe", sinusoidal_positions(c.max_len, c.n_embd), persistent=False)
        self.drop = nn.Dropout(c.dropout)
        kw = dict(hidden=c.d_ff, dropout=c.dropout, bias=c.bias, norm=c.norm, backend=c.attention)
        self.encoder = nn.ModuleList(Block(c.n_embd, c.n_head, causal=False, **kw) for _ in range(c.n_enc_layer))
        self.decoder = nn.ModuleList(Block(c.n_embd, c.n_head, cross=True, **kw) for _ in range(c.n_dec_layer))
        pre = c.norm == "pre"
        self.enc_ln = nn.LayerNorm(c.n_embd, bias=c.bias) if pre else nn.Identity()
        self.dec_ln = nn.LayerNorm(c.n_embd, bias=c.bias) if pre else nn.Identity()
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.apply(self._init_weights)
        if c.tie_embeddings:
            self.lm_head.weight = self.tgt_emb.weight

    def _init_weights(self, module: nn.Module) -> None:
        # fairseq's transformer: Xavier linears, N(0, C^-1/2) embeddings (scaled by sqrt(C) on input).
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.n_embd**-0.5)

    def num_params(self, *, non_embedding: bool = False) -> int:
        """Parameters of the module, tied weights counted once."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= sum(p.numel() for name, p in self.named_parameters() if "emb" in name or "pos" in name)
            if not self.config.tie_embeddings:
                n -= self.lm_head.weight.numel()
        return n

    def _embed(self, ids: torch.Tensor, emb: nn.Embedding, side: str, start: int = 0) -> torch.Tensor:
        t = ids.size(1)
        if start + t > self.config.max_len:
            raise ValueError(
                f"{side} of {start + t} tokens exceeds model.max_len={self.config.max_len}: truncate it "
                f"(the data module and translate.py do, with a warning) or train with a larger model.max_len"
            )
        pos = torch.arange(start, start + t, device=ids.device)  # (T,)
        if self.config.positions == "learned":
            p = (self.enc_pos if side == "source" else self.dec_pos)(pos)
        else:
            p = self.pe[pos]
        return self.drop(emb(ids) * math.sqrt(self.config.n_embd) + p)  # (B, T, C)

    def encode(self, src: torch.Tensor, src_pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """src (B, S) token ids -> memory (B, S, C)."""
        x = self._embed(src, self.src_emb, "source")
        for block in self.encoder:
            x = block(x, key_padding_mask=src_pad_mask)
        return self.enc_ln(x)

    def memory_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Cross-attention keys/values of every decoder layer, computed once per source: L x 2 x (B, H, S, D)."""
        return [block.cross_attn.project_memory(memory) for block in self.decoder]

    def new_cache(self, batch: int, max_len: int | None = None) -> list[KVCache]:
        """One empty self-attention KV cache per decoder layer."""
        p, c = self.lm_head.weight, self.config
        length = max_len or c.max_len
        return [
            KVCache(batch, c.n_head, length, c.head_dim, device=p.device, dtype=p.dtype) for _ in range(c.n_dec_layer)
        ]

    def decode(
        self,
        tgt: torch.Tensor,
        memory_kv: list[tuple[torch.Tensor, torch.Tensor]],
        src_pad_mask: torch.Tensor | None = None,
        *,
        cache: list[KVCache] | None = None,
    ) -> torch.Tensor:
        """tgt (B, T) decoder input ids -> logits (B, T, V). With `cache`, tgt continues the cached prefix."""
        start = cache[0].len if cache else 0
        x = self._embed(tgt, self.tgt_emb, "target", start)
        for i, block in enumerate(self.decoder):
            x = block(x, memory_kv=memory_kv[i], memory_pad_mask=src_pad_mask, cache=cache[i] if cache else None)
        return self.lm_head(self.dec_ln(x))

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, src_pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: src (B, S), decoder input tgt (B, T) -> logits (B, T, V)."""
        memory = self.encode(src, src_pad_mask)
        return self.decode(tgt, self.memory_kv(memory), src_pad_mask)
