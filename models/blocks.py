"""Transformer building blocks shared by the GPT and the seq2seq model."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from errors import ConfigError
from models import sizing
from models.attention import BACKENDS, Attention, Backend, KVCache

NORMS = ("pre", "post")  # pre-LN x + f(ln(x)) (GPT-2) | post-LN ln(x + f(x)) (the 2017 paper)
POSITIONS = ("learned", "sinusoidal")  # added to the token embeddings (both families)


class ReLU2(nn.Module):
    """relu(x)² (Primer; the GPT-2 speedrun's MLP)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x).square()


class SwiGLU(nn.Module):
    """silu(gate) · up (Shazeer 2020; LLaMA's MLP): (..., 2F) holding gate and up side by side -> (..., F)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = x.chunk(2, dim=-1)
        return F.silu(gate) * up


# gelu: exact (nanoGPT); gelu_tanh: the tanh approximation OpenAI's GPT-2 was trained with (HF "gelu_new");
# relu: the 2017 paper and the PyTorch tutorials; relu2 and swiglu: the GPT's (models/gpt.py).
ACTIVATIONS = {
    "gelu": lambda: nn.GELU(),
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "relu": lambda: nn.ReLU(),
    "relu2": ReLU2,
    "swiglu": SwiGLU,
}
GATED = ("swiglu",)  # their up projection is 2F wide: the gate and the values
# layernorm: GPT-2, the 2017 paper; rmsnorm: no centring, no bias (LLaMA, the GPT-2 speedrun), torch's own.
NORMALIZATIONS = ("layernorm", "rmsnorm")


def make_norm(normalization: str, width: int, *, bias: bool = True) -> nn.Module:
    """A LayerNorm (with a bias when `bias`) or an RMSNorm over the last `width` channels."""
    if normalization == "rmsnorm":
        return nn.RMSNorm(width, eps=1e-5)
    return nn.LayerNorm(width, bias=bias)


def check_choices(c) -> None:
    """The option fields of a model config, each against the values its family has (`choices`), and its flags."""
    for field, known in c.choices.items():
        value = getattr(c, field)
        if value not in known:
            raise ConfigError(f"model.{field}={value!r} is unknown to the {c.family}; choose one of {known}")
    for field in c.flags:
        if not isinstance(getattr(c, field), bool):
            raise ConfigError(f"model.{field} must be true or false, got {getattr(c, field)!r}")


def check_config(c, int_fields: tuple[str, ...]) -> None:
    """The checks every model config shares, each error naming its `model.<field>` override: positive
    integer sizes, heads that divide the width, a dropout in [0, 1), a known attention backend and options."""
    for name in int_fields:
        value = getattr(c, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")
    if c.n_embd % c.n_head != 0:
        nearest = c.n_head * max(1, c.n_embd // c.n_head)
        raise ConfigError(
            f"model.n_embd={c.n_embd} is not divisible by model.n_head={c.n_head}: "
            f"pick n_embd as a multiple of n_head (e.g. model.n_embd={nearest})"
        )
    if not 0.0 <= c.dropout < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1), got {c.dropout}")
    if c.attention not in BACKENDS:
        raise ConfigError(f"model.attention={c.attention!r} is unknown; choose one of {BACKENDS}")
    check_choices(c)


def sinusoidal_positions(max_len: int, n_embd: int) -> torch.Tensor:
    """The paper's fixed encodings: sin on even, cos on odd channels -> (max_len, C)."""
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, n_embd, 2, dtype=torch.float32) * (-math.log(10000.0) / n_embd))
    pe = torch.zeros(max_len, n_embd)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: n_embd // 2])
    return pe


class ModelConfig:
    """What every model config dataclass shares: sizes checked on construction (each error naming its
    `model.<field>` override), head_dim, its module (`build`), parameter and FLOP counts, a plain dict.

    The configs are frozen dataclasses: a field known later (the vocabulary, once the data is set up) makes a new
    config with `dataclasses.replace`, which validates it again.
    """

    integer_fields: ClassVar[tuple[str, ...]]  # sizes that must be positive integers
    choices: ClassVar[dict[str, tuple[str, ...]]]  # option fields and the values this family has
    flags: ClassVar[tuple[str, ...]] = ("bias", "tie_embeddings", "head_bias", "embedding_scale")  # true | false
    family: ClassVar[str]  # for messages: "GPT", "seq2seq model"

    def __post_init__(self) -> None:
        check_config(self, self.integer_fields)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def max_seq_len(self) -> int:
        """The longest sequence the model takes (the FLOP count's default length)."""
        raise NotImplementedError

    def build(self) -> nn.Module:
        """The torch module of this config (on the current default device)."""
        raise NotImplementedError

    def num_params(self, *, non_embedding: bool = False) -> int:
        """Parameters of the module (tied weights once); non_embedding leaves out the embedding tables."""
        return sizing.num_params(self, non_embedding=non_embedding)

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token, forward + backward, at seq_len (default: max_seq_len)."""
        return sizing.flops_per_token(self, seq_len or self.max_seq_len)

    def to_dict(self) -> dict:
        return asdict(self)


class MLP(nn.Module):
    """Position-wise feed-forward: C -> hidden F -> C with an activation between (a gated one: C -> 2F -> F -> C)."""

    def __init__(self, n_embd: int, hidden: int, *, dropout: float = 0.0, bias: bool = True, activation: str = "gelu"):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, hidden * (2 if activation in GATED else 1), bias=bias)
        self.act = ACTIVATIONS[activation]()
        self.c_proj = nn.Linear(hidden, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    """One transformer layer: self-attention, optionally cross-attention over an encoder's output, then an MLP.

    Every sublayer f is wrapped pre-LN, x + f(ln(x)) (GPT-2, stable; the default), or post-LN, ln(x + f(x))
    (the 2017 paper); ln is a LayerNorm or an RMSNorm (`normalization`), and `qk_norm` normalises each head's
    queries and keys the same way. The GPT uses causal blocks, the seq2seq encoder bidirectional ones and its decoder
    causal blocks with cross-attention.
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        *,
        hidden: int | None = None,
        n_kv_head: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        causal: bool = True,
        cross: bool = False,
        norm: str = "pre",
        normalization: str = "layernorm",
        qk_norm: bool = False,
        activation: str = "gelu",
        backend: Backend = "sdpa",
    ):
        super().__init__()
        self.pre = norm == "pre"
        kw = dict(dropout=dropout, bias=bias, backend=backend)
        self.ln_1 = make_norm(normalization, n_embd, bias=bias)
        head_norm = (lambda d: make_norm(normalization, d, bias=bias)) if qk_norm else None
        self.attn = Attention(n_embd, n_head, n_kv_head=n_kv_head, causal=causal, qk_norm=head_norm, **kw)
        self.cross = cross
        if cross:
            self.ln_cross = make_norm(normalization, n_embd, bias=bias)
            self.cross_attn = Attention(n_embd, n_head, cross=True, **kw)
        self.ln_2 = make_norm(normalization, n_embd, bias=bias)
        self.mlp = MLP(n_embd, hidden or 4 * n_embd, dropout=dropout, bias=bias, activation=activation)

    def _sublayer(self, x: torch.Tensor, ln: nn.Module, f) -> torch.Tensor:
        return x + f(ln(x)) if self.pre else ln(x + f(x))

    def forward(
        self,
        x: torch.Tensor,
        *,
        key_padding_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        memory_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        memory_pad_mask: torch.Tensor | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C). key_padding_mask (B, T) masks x's own padding (encoder); with `cross`,
        memory_kv are the encoder output's keys/values and memory_pad_mask (B, S) its padding; rope: the rotary
        cos and sin of x's positions (self-attention)."""
        x = self._sublayer(
            x, self.ln_1, lambda h: self.attn(h, key_padding_mask=key_padding_mask, cache=cache, rope=rope)
        )
        if self.cross:
            x = self._sublayer(
                x, self.ln_cross, lambda h: self.cross_attn(h, memory_kv=memory_kv, key_padding_mask=memory_pad_mask)
            )
        return self._sublayer(x, self.ln_2, self.mlp)
