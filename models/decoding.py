"""Batched greedy and beam-search decoding for Seq2Seq, with a decoder self-attention KV cache.

The source is encoded once and every decoder layer's cross-attention keys/values are computed once;
each step then feeds only the newest target token (use_cache=False recomputes the whole prefix, the
reference the cache must match; a model without a KV cache, `kv_cache = False` as model.impl=torch's
nn.Transformer, always takes that path). A sentence stops at EOS or after
min(floor(max_len_a * source_len + max_len_b), model.max_len) generated tokens, EOS included.
Both functions return, per source sentence, the generated token ids without BOS and EOS; they never
generate `pad_id` (nor BOS, unless it doubles as EOS): those logits are masked before the softmax.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from errors import ConfigError
from models.seq2seq import Seq2SeqBase


def max_lengths(
    src: torch.Tensor, src_pad_mask: torch.Tensor | None, max_len_a: float, max_len_b: int, cap: int
) -> list[int]:
    """Most tokens each sentence may generate: a * (non-pad source length) + b, within [1, cap]."""
    src_len = src.size(1) - src_pad_mask.sum(1) if src_pad_mask is not None else torch.full_like(src[:, 0], src.size(1))
    return [max(1, min(cap, math.floor(max_len_a * n + max_len_b))) for n in src_len.tolist()]


class _Stepper:
    """Log-probabilities of the next token after `tokens` (N, t), with or without the KV cache."""

    def __init__(self, model: Seq2SeqBase, memory_kv, src_pad_mask, *, rows: int, steps: int, use_cache: bool, banned):
        self.model, self.memory_kv, self.src_pad_mask = model, memory_kv, src_pad_mask
        self.cache = model.new_cache(rows, steps) if use_cache and model.kv_cache else None
        self.banned = banned

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.cache is not None:
            logits = self.model.decode(tokens[:, -1:], self.memory_kv, self.src_pad_mask, cache=self.cache)
        else:
            logits = self.model.decode(tokens, self.memory_kv, self.src_pad_mask)
        logits = logits[:, -1].float()
        logits[:, self.banned] = float("-inf")
        return logits.log_softmax(-1)  # (N, V)

    def reorder(self, rows: torch.Tensor) -> None:
        for layer in self.cache or []:
            layer.reorder(rows)


@dataclass(frozen=True)
class Decoding:
    """What both searches need besides the model: the special ids and the length limit of a translation.

    A sentence stops at EOS or after min(floor(max_len_a * source_len + max_len_b), model.max_len) tokens;
    use_cache=False recomputes the whole prefix each step (the reference the KV cache must match).
    """

    bos_id: int
    eos_id: int
    pad_id: int | None = None
    max_len_a: float = 1.2
    max_len_b: int = 10
    use_cache: bool = True

    def banned(self) -> list[int]:
        """Token ids a translation never contains."""
        return [i for i in (self.pad_id, self.bos_id) if i is not None and i != self.eos_id]


def _repeat(x, n: int):
    """Every tensor in x (a tensor, or nested lists/tuples of them) with each batch row repeated n times."""
    if isinstance(x, (list, tuple)):
        return type(x)(_repeat(y, n) for y in x)
    return x.repeat_interleave(n, 0) if x is not None else None


def _encode(model: Seq2SeqBase, src: torch.Tensor, src_pad_mask: torch.Tensor | None, repeat: int = 1):
    memory_kv = model.memory_kv(model.encode(src, src_pad_mask))  # per-layer (k, v), or the memory itself
    if repeat > 1:
        memory_kv, src_pad_mask = _repeat(memory_kv, repeat), _repeat(src_pad_mask, repeat)
    return memory_kv, src_pad_mask


class _Search:
    """The set-up both searches share: limits, the encoded source (repeated per beam), the step function."""

    def __init__(self, model: Seq2SeqBase, src: torch.Tensor, src_pad_mask: torch.Tensor | None, d: Decoding, k: int):
        self.limits = max_lengths(src, src_pad_mask, d.max_len_a, d.max_len_b, model.config.max_len)
        self.steps = max(self.limits)
        memory_kv, mask = _encode(model, src, src_pad_mask, repeat=k)
        rows = src.size(0) * k
        self.step = _Stepper(
            model, memory_kv, mask, rows=rows, steps=self.steps, use_cache=d.use_cache, banned=d.banned()
        )
        self.tokens = torch.full((rows, 1), d.bos_id, dtype=torch.long, device=src.device)  # (B*K, 1)


@torch.no_grad()
def greedy_search(
    model: Seq2SeqBase, src: torch.Tensor, src_pad_mask: torch.Tensor | None, decoding: Decoding
) -> list[list[int]]:
    """Most likely next token at every step, for a batch src (B, S) at once."""
    with _eval_mode(model):
        search = _Search(model, src, src_pad_mask, decoding, k=1)
        tokens, limits = search.tokens, search.limits
        limit_t = torch.tensor(limits, device=src.device)
        done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
        for step in range(search.steps):
            next_token = search.step(tokens).argmax(-1)  # (B,)
            tokens = torch.cat((tokens, next_token[:, None]), dim=1)
            done |= next_token.eq(decoding.eos_id) | (step + 1 >= limit_t)
            if bool(done.all()):
                break
        out = []
        for row, limit in zip(tokens[:, 1:].tolist(), limits):
            row = row[:limit]
            out.append(row[: row.index(decoding.eos_id)] if decoding.eos_id in row else row)
        return out


@torch.no_grad()
def beam_search(
    model: Seq2SeqBase,
    src: torch.Tensor,
    src_pad_mask: torch.Tensor | None,
    decoding: Decoding,
    *,
    beam_size: int = 5,
    length_penalty: float = 1.0,
) -> list[list[int]]:
    """Beam search over a batch src (B, S); B x K hypotheses advance together as one (B*K)-row batch.

    Each step keeps the 2K best (beam, token) continuations per sentence: those ending in EOS among
    the best K are finished, the K best others stay live (fairseq's scheme). A sentence is done once it
    has K finished hypotheses or reaches its length limit (its live beams are then finished as they
    are). The answer is the finished hypothesis with the best score / length**length_penalty, where
    length counts EOS. With beam_size=1 this is exactly greedy search.
    """
    if not isinstance(beam_size, int) or beam_size < 1:
        raise ConfigError(f"beam_size must be a positive integer, got {beam_size!r}")
    with _eval_mode(model):
        b, k = src.size(0), beam_size
        search = _Search(model, src, src_pad_mask, decoding, k=k)
        step_fn, tokens, limits, eos_id = search.step, search.tokens, search.limits, decoding.eos_id
        scores = torch.full((b, k), float("-inf"), device=src.device)
        scores[:, 0] = 0.0  # all beams start identical: keep only the first live
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
        done = [False] * b
        base = torch.arange(b, device=src.device)[:, None] * k  # (B, 1)
        for step in range(search.steps):
            logp = step_fn(tokens)  # (B*K, V)
            v = logp.size(-1)
            cand = (scores[:, :, None] + logp.view(b, k, v)).view(b, k * v)
            top_scores, top_idx = cand.topk(min(2 * k, k * v), dim=1)  # (B, 2K)
            top_beam, top_tok = top_idx // v, top_idx % v
            is_eos = top_tok.eq(eos_id)
            live_scores, pick = top_scores.masked_fill(is_eos, float("-inf")).topk(k, dim=1)  # (B, K)
            rows = (base + top_beam.gather(1, pick)).view(-1)  # (B*K,) rows of the surviving prefixes
            old_tokens = tokens
            tokens = torch.cat((tokens[rows], top_tok.gather(1, pick).view(-1, 1)), dim=1)
            step_fn.reorder(rows)
            scores = live_scores
            # Bookkeeping of finished hypotheses on the CPU (at most 2K per sentence per step).
            top_s, top_b, eos_c, live_c = top_scores.tolist(), top_beam.tolist(), is_eos.tolist(), live_scores.tolist()
            for i in range(b):
                if done[i]:
                    continue
                for j in range(k):  # EOS among the best K continuations
                    if eos_c[i][j] and top_s[i][j] > float("-inf"):
                        hyp = old_tokens[i * k + top_b[i][j], 1:].tolist()
                        finished[i].append((top_s[i][j] / (len(hyp) + 1) ** length_penalty, hyp))
                if step + 1 >= limits[i]:
                    for j in range(k):
                        if live_c[i][j] > float("-inf"):
                            hyp = tokens[i * k + j, 1:].tolist()
                            finished[i].append((live_c[i][j] / len(hyp) ** length_penalty, hyp))
                    done[i] = True
                elif len(finished[i]) >= k:
                    done[i] = True
            if all(done):
                break
        return [max(hyps, key=lambda h: h[0])[1] for hyps in finished]


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Dropout off while decoding; the model's mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
