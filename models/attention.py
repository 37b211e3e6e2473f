"""One multi-head attention module for causal self-, bidirectional self- and cross-attention.

Grouped-query attention: n_kv_head (G) key/value heads, each shared by n_head / n_kv_head query heads (G = 1:
multi-query; G = H, the default: plain multi-head attention), through SDPA's enable_gqa, so the fused kernels run
and the KV cache holds G heads. Rotary positions (RoFormer) rotate q and k by their absolute positions, so that
q·k depends on the positions' difference only; cached keys are stored rotated. QK-norm normalises each head's
queries and keys (over D, before the rotation).

Shapes: B batch, T query length, S key length, C = n_embd, H = n_head, G = n_kv_head, D = C // H.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Backend = Literal["sdpa", "flash", "math"]
BACKENDS: tuple[str, ...] = ("sdpa", "flash", "math")


class KVCache:
    """Preallocated key/value buffers of one attention layer: appending costs O(new tokens)."""

    def __init__(self, batch: int, n_head: int, max_len: int, head_dim: int, *, device, dtype):
        shape = (batch, n_head, max_len, head_dim)  # n_head: the layer's key/value heads (G)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.len = 0

    @property
    def max_len(self) -> int:
        return self.k.size(2)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (B, G, t, D) new keys/values; return all keys/values so far (B, G, len, D)."""
        end = self.len + k.size(2)
        if end > self.max_len:
            raise RuntimeError(f"KV cache overflow: {end} positions > capacity {self.max_len}")
        self.k[:, :, self.len : end] = k
        self.v[:, :, self.len : end] = v
        self.len = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def reorder(self, index: torch.Tensor) -> None:
        """Select batch rows (beam search): index is (B',) into the current batch."""
        self.k = self.k.index_select(0, index)
        self.v = self.v.index_select(0, index)


def rotary_tables(max_len: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles pos * base^(-2i/D), each (max_len, D/2), on the default device. Computed
    on the CPU: on the meta device (models/sizing.py) torch's arange is a Python reference kernel whose checks
    import sympy (0.5 s of start-up)."""
    cpu = torch.device("cpu")
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32, device=cpu) / head_dim)  # (D/2,)
    angles = torch.arange(max_len, dtype=torch.float32, device=cpu)[:, None] * inv_freq[None, :]  # (max_len, D/2)
    device = torch.get_default_device()
    return angles.cos().to(device), angles.sin().to(device)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the channel pairs (i, i + D/2) of x (B, H, T, D) by their position's angles: cos, sin (T, D/2)."""
    x1, x2 = x.chunk(2, dim=-1)  # 2 x (B, H, T, D/2)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def math_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Explicit softmax(QK^T / sqrt(D)) V, the reference the fused kernels must match.

    q (B, H, T, D); k, v (B, G, S, D), each key/value head serving H / G query heads (as SDPA's enable_gqa).
    attn_mask is boolean, broadcastable to (B, H, T, S), True where attending is allowed.
    """
    if k.size(1) != q.size(1):
        k, v = (z.repeat_interleave(q.size(1) // k.size(1), dim=1) for z in (k, v))  # (B, H, S, D)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))  # (B, H, T, S)
    if attn_mask is not None:
        att = att.masked_fill(~attn_mask, float("-inf"))
    att = F.softmax(att.float(), dim=-1).to(q.dtype)
    if dropout_p > 0.0:
        att = F.dropout(att, p=dropout_p)
    return att @ v  # (B, H, T, D)


def build_mask(
    t: int,
    s: int,
    *,
    causal: bool,
    key_padding_mask: torch.Tensor | None,
    device: torch.device,
) -> torch.Tensor | None:
    """Boolean mask (B|1, 1, T, S), True = may attend, or None when nothing is masked.

    The causal part is aligned bottom-right: query i (of the last T positions) sees keys <= S - T + i,
    which is what a KV cache needs. key_padding_mask is (B, S) with True at padding.
    """
    mask = None
    if causal:
        mask = torch.ones(t, s, dtype=torch.bool, device=device).tril(diagonal=s - t)[None, None]
    if key_padding_mask is not None:
        keep = ~key_padding_mask[:, None, None, :]  # (B, 1, 1, S)
        mask = keep if mask is None else (mask & keep)
    return mask


class Attention(nn.Module):
    """Multi-head attention with n_kv_head (default n_head) key/value heads; `cross=True` takes keys/values from a
    separate memory sequence; qk_norm(D) builds the norm of each head's queries and keys (self-attention)."""

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        *,
        n_kv_head: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        causal: bool = False,
        cross: bool = False,
        backend: Backend = "sdpa",
        qk_norm: Callable[[int], nn.Module] | None = None,
    ):
        super().__init__()
        n_kv_head = n_kv_head or n_head
        if n_embd % n_head != 0 or n_head % n_kv_head != 0:
            raise ValueError(f"n_embd={n_embd}, n_head={n_head}, n_kv_head={n_kv_head}: the heads must divide evenly")
        if backend not in BACKENDS:
            raise ValueError(f"attention backend {backend!r} is unknown; choose one of {BACKENDS}")
        if causal and cross:
            raise ValueError("cross-attention is never causal")
        if cross and qk_norm is not None:
            raise ValueError("qk_norm is an option of self-attention")
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, n_embd // n_head
        self.causal, self.cross, self.backend, self.dropout = causal, cross, backend, dropout
        kv = n_kv_head * self.head_dim  # G·D
        if cross:
            self.c_q = nn.Linear(n_embd, n_embd, bias=bias)
            self.c_kv = nn.Linear(n_embd, 2 * kv, bias=bias)
        else:
            self.c_attn = nn.Linear(n_embd, n_embd + 2 * kv, bias=bias)  # fused q (C), k and v (G·D each)
        self.qk_norm = qk_norm is not None
        if self.qk_norm:  # each head's queries and keys normalised over D
            self.q_norm, self.k_norm = qk_norm(self.head_dim), qk_norm(self.head_dim)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    @property
    def qkv_widths(self) -> tuple[int, int, int]:
        """Output widths of the query, key and value projections (models/sizing.py splits c_attn by them)."""
        q, kv = self.n_head * self.head_dim, self.n_kv_head * self.head_dim
        return q, kv, kv

    @property
    def qkv_heads(self) -> tuple[int, int, int]:
        return self.n_head, self.n_kv_head, self.n_kv_head

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, width = x.shape
        return x.view(b, t, width // self.head_dim, self.head_dim).transpose(1, 2)  # (B, H or G, T, D)

    def project_memory(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of a cross-attention memory (B, S, C) -> 2 x (B, G, S, D); cacheable."""
        k, v = self.c_kv(memory).split(self.n_kv_head * self.head_dim, dim=2)
        return self._heads(k), self._heads(v)

    def forward(
        self,
        x: torch.Tensor,
        *,
        memory: torch.Tensor | None = None,
        memory_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        key_padding_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C).

        Self-attention: keys come from x (and from `cache`, which is extended in place); `rope` is the cos and
        sin (T, D/2) of x's positions (after the cached ones), applied to q and k.
        Cross-attention: keys come from `memory` (B, S, C) or precomputed `memory_kv`.
        key_padding_mask (B, S) is True at padded key positions.
        """
        b, t, c = x.shape
        if self.cross:
            q = self._heads(self.c_q(x))  # (B, H, T, D)
            k, v = memory_kv if memory_kv is not None else self.project_memory(memory)  # (B, G, S, D)
        else:
            q, k, v = (self._heads(z) for z in self.c_attn(x).split(self.qkv_widths, dim=2))
            if self.qk_norm:
                q, k = self.q_norm(q), self.k_norm(k)
            if rope is not None:
                q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
            if cache is not None:
                k, v = cache.append(k, v)  # (B, G, S, D): every key so far
        s = k.size(2)
        dropout_p = self.dropout if self.training else 0.0
        # One query (cached decoding) may see every key: causality masks something only for T > 1. The square
        # causal case without padding is SDPA's is_causal (flash kernels apply, no mask is built).
        causal = self.causal and t > 1
        is_causal = causal and t == s and key_padding_mask is None and self.backend != "math"
        mask = None if is_causal else build_mask(t, s, causal=causal, key_padding_mask=key_padding_mask,
                                                 device=x.device)  # fmt: skip
        if self.backend == "math":
            y = math_attention(q, k, v, mask, dropout_p)
        else:
            kwargs = dict(attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)
            if self.n_kv_head != self.n_head:
                kwargs["enable_gqa"] = True
            if self.backend == "flash":
                y = _flash_sdpa(q, k, v, **kwargs)
            else:
                y = F.scaled_dot_product_attention(q, k, v, **kwargs)
        y = y.transpose(1, 2).contiguous().view(b, t, c)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


def _flash_sdpa(q, k, v, **kwargs) -> torch.Tensor:
    """SDPA restricted to the flash kernel: raises instead of silently falling back."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if not q.is_cuda:
        raise RuntimeError(
            "model.attention=flash needs a CUDA GPU with flash-attention kernels; "
            "use model.attention=sdpa (picks the best available kernel) or math"
        )
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, **kwargs)
