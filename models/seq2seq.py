"""Seq2Seq: the "Attention is All You Need" encoder-decoder, built from the GPT's Attention and MLP.

`Seq2SeqConfig.impl` picks the implementation: native (`Seq2Seq`, here: every attention backend and a
decoder KV cache) or torch (`models/seq2seq_torch.Seq2SeqTorch`, built on torch.nn.Transformer as the
official PyTorch translation tutorial is). Both share `Seq2SeqBase` (embeddings, positions, output
head) and train and decode through the same LightningModule and searches (models/decoding.py).
Source and target may have separate vocabularies (src_vocab_size / tgt_vocab_size, untied embeddings).

Shapes: B batch, S source length, T target length, C = n_embd, V = vocab_size, H = n_head.
Masks: src_pad_mask (B, S) is True at padded source positions. Target padding needs no mask: the
decoder is causal and targets are right-padded, so no real position ever attends to a padded one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from errors import ConfigError
from models.attention import KVCache
from models.blocks import NORMS, POSITIONS, Block, ModelConfig, sinusoidal_positions

IMPLS = ("native", "torch")


@dataclass(frozen=True)
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
    tie_embeddings: bool = True  # one embedding for source, target and the output layer (one joint vocabulary)
    attention: str = "sdpa"  # sdpa | flash | math
    name: str = "seq2seq"  # a label for logs and reports
    src_vocab_size: int | None = None  # separate source vocabulary; None: the joint vocab_size
    tgt_vocab_size: int | None = None  # separate target vocabulary; None: the joint vocab_size
    activation: str = "gelu"  # gelu | gelu_tanh | relu (the paper's)
    embedding_scale: bool = True  # multiply token embeddings by sqrt(n_embd), as the paper does
    head_bias: bool = False  # a bias on the output layer (the tutorials' untied generators have one)
    impl: str = "native"  # native (this file: KV cache, every attention backend) | torch (torch.nn.Transformer)

    integer_fields = ("vocab_size", "max_len", "n_enc_layer", "n_dec_layer", "n_head", "n_embd", "d_ff")
    choices = {"norm": NORMS, "positions": POSITIONS, "activation": ("gelu", "gelu_tanh", "relu")}
    family = "seq2seq model"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.impl not in IMPLS:
            raise ConfigError(f"model.impl={self.impl!r} is unknown; choose one of {IMPLS}")
        if self.impl == "torch" and self.attention != "sdpa":
            raise ConfigError(
                f"model.impl=torch runs torch.nn.MultiheadAttention, which picks its own kernels: "
                f"model.attention={self.attention!r} needs model.impl=native (or set model.attention=sdpa)"
            )
        self.check_vocab()

    @property
    def max_seq_len(self) -> int:
        """FLOPs are per target token, with a source of the same length."""
        return self.max_len

    def build(self) -> Seq2SeqBase:
        """The encoder-decoder of `impl`: native (this file) or torch (models/seq2seq_torch.py)."""
        if self.impl == "torch":
            from models.seq2seq_torch import Seq2SeqTorch

            return Seq2SeqTorch(self)
        return Seq2Seq(self)

    @property
    def src_vocab(self) -> int:
        return self.vocab_size if self.src_vocab_size is None else self.src_vocab_size

    @property
    def tgt_vocab(self) -> int:
        return self.vocab_size if self.tgt_vocab_size is None else self.tgt_vocab_size

    def check_vocab(self) -> None:
        """Vocabulary sizes (the data's, given with dataclasses.replace): positive, and tied embeddings only over
        one joint vocabulary."""
        for name in ("vocab_size", "src_vocab_size", "tgt_vocab_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")
        separate = self.src_vocab_size is not None or self.tgt_vocab_size is not None
        if self.tie_embeddings and separate:
            raise ConfigError(
                f"model.tie_embeddings=true needs one joint vocabulary, but model.src_vocab_size="
                f"{self.src_vocab_size} / model.tgt_vocab_size={self.tgt_vocab_size} set separate ones: "
                f"set model.tie_embeddings=false"
            )


class Seq2SeqBase(nn.Module):
    """What both implementations share: token embeddings (scaled by sqrt(C) when `embedding_scale`), positions,
    dropout, the output head (tied to the embeddings or its own Linear; a bias when `head_bias`) and the
    interface of models/decoding.py: encode, memory_kv, decode (and new_cache when `kv_cache`).

    Subclasses build their encoder and decoder stacks in `build_stacks` and initialise in `init_weights`.
    """

    kv_cache: ClassVar[bool]  # can decode() continue a prefix from a KV cache (else it recomputes the prefix)?

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = c = config
        self.src_emb = nn.Embedding(c.src_vocab, c.n_embd)
        self.tgt_emb = self.src_emb if c.tie_embeddings else nn.Embedding(c.tgt_vocab, c.n_embd)
        if c.positions == "learned":
            self.enc_pos = nn.Embedding(c.max_len, c.n_embd)
            self.dec_pos = nn.Embedding(c.max_len, c.n_embd)
        else:
            self.register_buffer("pe", sinusoidal_positions(c.max_len, c.n_embd), persistent=False)
        self.drop = nn.Dropout(c.dropout)
        self.build_stacks(c)
        self.lm_head = nn.Linear(c.n_embd, c.tgt_vocab, bias=c.head_bias)
        self.init_weights()
        if c.tie_embeddings:
            self.lm_head.weight = self.tgt_emb.weight

    def build_stacks(self, c: Seq2SeqConfig) -> None:
        raise NotImplementedError

    def init_weights(self) -> None:
        raise NotImplementedError

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
        tok = emb(ids) * math.sqrt(self.config.n_embd) if self.config.embedding_scale else emb(ids)
        return self.drop(tok + p)  # (B, T, C)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, src_pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: src (B, S), decoder input tgt (B, T) -> logits (B, T, V)."""
        memory = self.encode(src, src_pad_mask)
        return self.decode(tgt, self.memory_kv(memory), src_pad_mask)


class Seq2Seq(Seq2SeqBase):
    """The native encoder-decoder: this project's Blocks, every attention backend, a decoder KV cache."""

    kv_cache = True

    def build_stacks(self, c: Seq2SeqConfig) -> None:
        kw = dict(
            hidden=c.d_ff, dropout=c.dropout, bias=c.bias, norm=c.norm, activation=c.activation, backend=c.attention
        )
        self.encoder = nn.ModuleList(Block(c.n_embd, c.n_head, causal=False, **kw) for _ in range(c.n_enc_layer))
        self.decoder = nn.ModuleList(Block(c.n_embd, c.n_head, cross=True, **kw) for _ in range(c.n_dec_layer))
        pre = c.norm == "pre"  # a post-LN stack already ends in a LayerNorm
        self.enc_ln = nn.LayerNorm(c.n_embd, bias=c.bias) if pre else nn.Identity()
        self.dec_ln = nn.LayerNorm(c.n_embd, bias=c.bias) if pre else nn.Identity()

    def init_weights(self) -> None:
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        # fairseq's transformer: Xavier linears, N(0, C^-1/2) embeddings (scaled by sqrt(C) on input).
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.n_embd**-0.5)

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
