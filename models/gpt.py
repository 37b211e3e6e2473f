"""GPT: a decoder-only transformer in the style of nanoGPT's model.py.

Read it as nanoGPT's file, split by what the seq2seq model shares: models/attention.py (the KV cache, rotary
positions, attention), models/blocks.py (norms, the MLP, the block), then here the config and the model.

The defaults are nanoGPT's GPT-2: pre-LN with a final LayerNorm, learned positions, GELU, the output
head tied to the token embedding. Options cover the other decoder-only tutorials (docs/models.md):
post-LN (no final LayerNorm: each block already ends in one), fixed sinusoidal positions, ReLU, an
untied head, a bias on the head, sqrt(C) scaling of the token embeddings, the MLP width, and
OpenAI's GPT-2 weights (`init_from`, models/pretrained.py); and the modern GPT's (the GPT-2 speedrun's,
LLaMA's): rotary or no positions, RMSNorm, QK-norm, ReLU² or SwiGLU, grouped-query attention, a logit
soft-cap and zero-initialised output projections.

Shapes: B batch, T sequence length, C = n_embd, V = vocab_size, L = n_layer, D = C // n_head.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from errors import ConfigError
from models.attention import KVCache, rotary_tables
from models.blocks import (
    ACTIVATIONS,
    NORMALIZATIONS,
    NORMS,
    POSITIONS,
    Block,
    ModelConfig,
    make_norm,
    sinusoidal_positions,
)
from models.pretrained import pretrained_fields
from models.sampling import sample_next


@dataclass(frozen=True)
class GPTConfig(ModelConfig):
    """Every size of the GPT. Validated on construction so bad sizes fail before any work is done."""

    vocab_size: int = 50257
    block_size: int = 1024  # maximum context length
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm layers (GPT-2: True)
    attention: str = "sdpa"  # sdpa | flash | math
    name: str = "gpt"  # a label for logs and reports
    norm: str = "pre"  # pre (GPT-2; a final LayerNorm) | post (the 2017 paper; no final LayerNorm)
    positions: str = "learned"  # learned (GPT-2) | sinusoidal (fixed, the 2017 paper) | rope (rotary q, k) | none
    activation: str = "gelu"  # gelu | gelu_tanh (OpenAI's GPT-2) | relu | relu2 (the speedrun) | swiglu (LLaMA)
    d_ff: int | None = None  # hidden size of the MLP; None: 4 * n_embd (swiglu: 8/3 * n_embd up to a multiple of 64)
    tie_embeddings: bool = True  # output head = token embedding (GPT-2)
    head_bias: bool = False  # a bias on the output head (Karpathy's gpt.py, the PyTorch LM tutorial)
    embedding_scale: bool = False  # multiply token embeddings by sqrt(n_embd) (the 2017 paper, PyTorch tutorials)
    init_from: str | None = None  # gpt2 | gpt2-medium | gpt2-large | gpt2-xl | a local GPT2LMHeadModel directory

    # Embedding and head rows rounded up to a multiple of this (GPT-2's 50257 -> 50304 with 64, as nanoGPT
    # does): matmul shapes the GPU's tensor cores tile well. The extra ids are never targets or samples.
    vocab_multiple: int = 1

    # The modern GPT's options (the GPT-2 speedrun's, LLaMA's); each default is GPT-2's.
    n_kv_head: int | None = None  # key/value heads: None = n_head (multi-head), 1 (multi-query), a divisor (grouped)
    rope_base: float = 10000.0  # positions=rope: the rotary frequencies' base (RoFormer, LLaMA: 10000)
    normalization: str = "layernorm"  # layernorm (GPT-2) | rmsnorm (LLaMA, the speedrun); norm= is its placement
    qk_norm: bool = False  # normalise each head's queries and keys (the speedrun, OLMo 2)
    logit_softcap: float | None = None  # logits -> cap·tanh(logits / cap) (Gemma 2, the speedrun: 30); null: none
    zero_init_proj: bool = False  # attention and MLP output projections start at 0: every block starts as identity

    integer_fields = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "vocab_multiple")
    choices = {
        "norm": NORMS,
        "positions": (*POSITIONS, "rope", "none"),
        "activation": tuple(ACTIVATIONS),
        "normalization": NORMALIZATIONS,
    }
    family = "GPT"
    flags = (*ModelConfig.flags, "qk_norm", "zero_init_proj")

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding and the head: vocab_size rounded up to a multiple of vocab_multiple."""
        return -(-self.vocab_size // self.vocab_multiple) * self.vocab_multiple

    def __post_init__(self) -> None:
        if self.init_from is not None:  # GPT-2's architecture (and, for a named model, its sizes)
            for key, value in pretrained_fields(self).items():
                object.__setattr__(self, key, value)  # how a frozen dataclass sets its own fields
        super().__post_init__()
        if self.d_ff is not None and (not isinstance(self.d_ff, int) or isinstance(self.d_ff, bool) or self.d_ff <= 0):
            raise ConfigError(f"model.d_ff must be a positive integer or null (4 * n_embd), got {self.d_ff!r}")
        g = self.n_kv_head
        if g is not None and (not isinstance(g, int) or isinstance(g, bool) or g <= 0 or self.n_head % g != 0):
            divisors = [d for d in range(1, self.n_head + 1) if self.n_head % d == 0]
            raise ConfigError(
                f"model.n_kv_head={g!r} must divide model.n_head={self.n_head}: one of {divisors} "
                f"(or null: n_head, plain multi-head attention)"
            )
        cap = self.logit_softcap
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float)) or cap <= 0):
            raise ConfigError(f"model.logit_softcap must be a number > 0 (the speedrun: 30) or null, got {cap!r}")
        base = self.rope_base
        if isinstance(base, bool) or not isinstance(base, (int, float)) or base <= 1:
            raise ConfigError(f"model.rope_base must be a number > 1 (RoFormer, LLaMA: 10000), got {base!r}")
        if self.positions == "rope" and self.head_dim % 2:
            raise ConfigError(
                f"model.positions=rope rotates channel pairs: the head size model.n_embd / model.n_head = "
                f"{self.head_dim} must be even"
            )

    @property
    def hidden(self) -> int:
        """Width F of the MLP's hidden layer. SwiGLU's default keeps the parameters of a 4C MLP with its three
        matrices: 8/3 C, rounded up to a multiple of 64 (LLaMA)."""
        if self.d_ff:
            return self.d_ff
        if self.activation == "swiglu":
            return 64 * -(-int(8 * self.n_embd / 3) // 64)
        return 4 * self.n_embd

    @property
    def kv_heads(self) -> int:
        """Key/value heads of each attention layer (what the KV cache holds)."""
        return self.n_kv_head or self.n_head

    @property
    def max_seq_len(self) -> int:
        return self.block_size

    def build(self) -> GPT:
        return GPT(self)


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        learned = config.positions == "learned"
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.padded_vocab_size, config.n_embd),
                **({"wpe": nn.Embedding(config.block_size, config.n_embd)} if learned else {}),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(
                    Block(
                        config.n_embd,
                        config.n_head,
                        hidden=config.hidden,
                        n_kv_head=config.kv_heads,
                        dropout=config.dropout,
                        bias=config.bias,
                        causal=True,
                        norm=config.norm,
                        normalization=config.normalization,
                        qk_norm=config.qk_norm,
                        activation=config.activation,
                        backend=config.attention,
                    )
                    for _ in range(config.n_layer)
                ),
                # A post-LN block already ends in a norm: a final one would only add an affine map.
                ln_f=make_norm(config.normalization, config.n_embd, bias=config.bias)
                if config.norm == "pre"
                else nn.Identity(),
            )
        )
        if config.positions == "sinusoidal":
            self.register_buffer("pe", sinusoidal_positions(config.block_size, config.n_embd), persistent=False)
        if config.positions == "rope":  # not saved: recomputed from the config
            cos, sin = rotary_tables(config.block_size, config.head_dim, config.rope_base)
            self.register_buffer("rope_cos", cos, persistent=False)  # (block_size, D/2)
            self.register_buffer("rope_sin", sin, persistent=False)
        tied = config.tie_embeddings
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=config.head_bias)
        if tied:
            self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        # GPT-2: residual projections scaled by 1/sqrt(2L) so the residual stream's variance stays put.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
                if config.zero_init_proj:  # the speedrun: each block adds nothing until it has learnt to
                    nn.init.zeros_(p)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def new_cache(self, batch: int, max_len: int | None = None) -> list[KVCache]:
        """One empty KV cache per layer, on the model's device and dtype."""
        p = self.lm_head.weight
        c = self.config
        return [
            KVCache(batch, c.kv_heads, max_len or c.block_size, c.head_dim, device=p.device, dtype=p.dtype)
            for _ in range(c.n_layer)
        ]

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        cache: list[KVCache] | None = None,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) token ids -> logits (B, T, V) (or (B, 1, V) with last_only) and the mean loss.

        V is the padded vocabulary (config.padded_vocab_size); its extra ids are never targets, so training
        pushes their logits down, and sampling (generate) leaves them out.

        With `cache`, idx continues the cached sequence: positions start at the cache length.
        """
        b, t = idx.shape
        start = cache[0].len if cache else 0
        if start + t > self.config.block_size:
            raise ValueError(
                f"sequence of {start + t} tokens exceeds the model's context model.block_size={self.config.block_size}"
            )
        pos = torch.arange(start, start + t, dtype=torch.long, device=idx.device)  # (T,)
        tok = self.transformer.wte(idx)  # (B, T, C)
        if self.config.embedding_scale:
            tok = tok * math.sqrt(self.config.n_embd)
        positions, rope = self.config.positions, None
        if positions == "learned":
            tok = tok + self.transformer.wpe(pos)  # (B, T, C) + (T, C)
        elif positions == "sinusoidal":
            tok = tok + self.pe[pos]
        elif positions == "rope":
            rope = self.rope_cos[pos], self.rope_sin[pos]  # (T, D/2) each: q and k are rotated in every layer
        x = self.transformer.drop(tok)  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache=cache[i] if cache else None, rope=rope)
        x = self.transformer.ln_f(x)
        if last_only and targets is None:
            x = x[:, [-1], :]  # (B, 1, C)
        logits = self.lm_head(x)  # (B, T, V)
        if self.config.logit_softcap is not None:
            cap = self.config.logit_softcap
            logits = cap * torch.tanh(logits / cap)  # smoothly into (-cap, cap)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        on_token: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """Extend idx (B, T) by max_new_tokens sampled tokens -> (B, T + max_new_tokens).

        The context is a window of at most block_size tokens. When it is full, it slides forward by
        half a block and (with the cache) the cache is refilled from the kept half, so each new token
        costs O(block_size) on average instead of a full forward pass. use_cache=False follows the same
        window schedule without a cache: both give identical tokens for the same generator. on_token(i) is
        called after the i-th new token (progress bars).
        """
        was_training = self.training
        self.eval()
        block = self.config.block_size
        keep = max(1, block // 2)
        window_start = max(0, idx.size(1) - block)
        cache: list[KVCache] | None = None
        fed = 0  # tokens of the current window already in the cache
        for _ in range(max_new_tokens):
            if idx.size(1) - window_start > block:
                window_start = idx.size(1) - keep
                cache, fed = None, 0
            if use_cache:
                if cache is None:
                    cache = self.new_cache(idx.size(0))
                logits, _ = self(idx[:, window_start + fed :], cache=cache, last_only=True)
                fed = idx.size(1) - window_start
            else:
                logits, _ = self(idx[:, window_start:], last_only=True)
            next_token = sample_next(
                logits[:, -1, : self.config.vocab_size],
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
            )
            idx = torch.cat((idx, next_token), dim=1)
            if on_token is not None:
                on_token(idx.size(1))
        self.train(was_training)
        return idx
