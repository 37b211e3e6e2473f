"""GPT: a decoder-only transformer in the style of nanoGPT's model.py.

Shapes: B batch, T sequence length, C = n_embd, V = vocab_size, L = n_layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models import sizing
from models.attention import KVCache
from models.blocks import Block, ModelConfig
from models.sampling import sample_next


@dataclass
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
    # Embedding and head rows rounded up to a multiple of this (GPT-2's 50257 -> 50304 with 64, as nanoGPT
    # does): matmul shapes the GPU's tensor cores tile well. The extra ids are never targets or samples.
    vocab_multiple: int = 1

    integer_fields = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "vocab_multiple")

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding and the head: vocab_size rounded up to a multiple of vocab_multiple."""
        return -(-self.vocab_size // self.vocab_multiple) * self.vocab_multiple

    count_params = sizing.num_params  # 12·L·C² + biases and norms + (V + T)·C, the head tied
    count_flops = sizing.flops_per_token  # 6N + 12·L·T·C (PaLM appendix B)


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.padded_vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(
                    Block(
                        config.n_embd,
                        config.n_head,
                        dropout=config.dropout,
                        bias=config.bias,
                        causal=True,
                        backend=config.attention,
                    )
                    for _ in range(config.n_layer)
                ),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        # GPT-2: residual projections scaled by 1/sqrt(2L) so the residual stream's variance stays put.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, *, non_embedding: bool = False) -> int:
        """Parameters of the module, tied weights counted once."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return n

    def new_cache(self, batch: int, max_len: int | None = None) -> list[KVCache]:
        """One empty KV cache per layer, on the model's device and dtype."""
        p = self.lm_head.weight
        c = self.config
        return [
            KVCache(batch, c.n_head, max_len or c.block_size, c.head_dim, device=p.device, dtype=p.dtype)
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
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache=cache[i] if cache else None)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)  # (B, T, V)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
            return logits, loss
        if last_only:
            x = x[:, [-1], :]
        return self.lm_head(x), None

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
