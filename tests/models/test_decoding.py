"""Greedy and beam search: cache == no cache, beam 1 == greedy, beam == exhaustive search, limits."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from models.decoding import Decoding, beam_search, greedy_search, max_lengths
from models.seq2seq import Seq2Seq, Seq2SeqConfig

PAD, BOS, EOS = 0, 1, 2
IDS = dict(bos_id=BOS, eos_id=EOS, pad_id=PAD)


def greedy(m, src, mask, **limits):
    return greedy_search(m, src, mask, Decoding(**IDS, **limits))


def beam(m, src, mask, *, beam_size, length_penalty=1.0, **limits):
    return beam_search(m, src, mask, Decoding(**IDS, **limits), beam_size=beam_size, length_penalty=length_penalty)


def eos_prone_model(vocab=30, eos_scale=2.5, seed=0, **kw) -> Seq2Seq:
    """A random model whose EOS logit varies a lot, so sentences end after different numbers of steps."""
    torch.manual_seed(seed)
    base = dict(vocab_size=vocab, max_len=32, n_enc_layer=2, n_dec_layer=2, n_head=2, n_embd=16, d_ff=32)
    m = Seq2Seq(Seq2SeqConfig(**{**base, "dropout": 0.0, "tie_embeddings": False, **kw})).eval()
    with torch.no_grad():
        m.lm_head.weight[EOS] *= eos_scale
    return m


def sources(b=6, s=8, vocab=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, vocab, (b, s), generator=g)
    for r in range(b):
        n = max(2, s - r)  # different lengths, right-padded, EOS last
        src[r, n - 1] = EOS
        src[r, n:] = PAD
    return src, src.eq(PAD)


def test_the_fixture_model_ends_sentences_at_different_steps():
    m = eos_prone_model()
    src, mask = sources()
    lengths = {len(h) for h in greedy(m, src, mask)}
    assert len(lengths) >= 3  # otherwise the tests below would not exercise early stopping


@pytest.mark.parametrize("kw", [dict(), dict(norm="post", positions="learned")])
def test_cached_and_uncached_decoding_agree(kw):
    m = eos_prone_model(**kw)
    src, mask = sources()
    assert greedy(m, src, mask) == greedy(m, src, mask, use_cache=False)
    for k in (2, 4):
        cached = beam(m, src, mask, beam_size=k)
        assert cached == beam(m, src, mask, beam_size=k, use_cache=False)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_one_equals_greedy(seed):
    m = eos_prone_model(seed=seed)
    src, mask = sources(seed=seed)
    greedy_ids = greedy(m, src, mask, max_len_a=1.0, max_len_b=3)
    assert beam(m, src, mask, beam_size=1, max_len_a=1.0, max_len_b=3) == greedy_ids
    limits = max_lengths(src, mask, 1.0, 3, m.config.max_len)
    assert any(len(h) < lim for h, lim in zip(greedy_ids, limits))  # some stopped at EOS


def test_batched_decoding_equals_one_sentence_at_a_time():
    m = eos_prone_model()
    src, mask = sources()
    batched_greedy = greedy(m, src, mask)
    batched_beam = beam(m, src, mask, beam_size=3)
    for r in range(src.size(0)):
        n = int((~mask[r]).sum())
        alone = src[r : r + 1, :n]
        assert greedy(m, alone, None) == [batched_greedy[r]]
        assert beam(m, alone, None, beam_size=3) == [batched_beam[r]]


def sequence_score(m: Seq2Seq, src: torch.Tensor, seq: list[int], banned: list[int]) -> float:
    """Sum of log p(token | prefix) of seq under teacher forcing, with banned logits masked (as decoding does)."""
    tgt = torch.tensor([[BOS, *seq[:-1]]])
    logits = m(src, tgt).float()
    logits[..., banned] = float("-inf")
    logp = logits.log_softmax(-1)[0]
    return sum(logp[i, tok].item() for i, tok in enumerate(seq))


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0])
def test_wide_beam_finds_the_exhaustive_best(length_penalty):
    """With vocabulary {3, 4, 5} + EOS and at most 3 tokens, a beam of 40 covers every hypothesis."""
    m = eos_prone_model(vocab=6, eos_scale=1.5, seed=3)
    src = torch.tensor([[3, 4, 5, 4, EOS]])
    limit = 3
    candidates = [[*w, EOS] for n in range(limit) for w in itertools.product((3, 4, 5), repeat=n)]
    candidates += [list(w) for w in itertools.product((3, 4, 5), repeat=limit)]  # cut at the limit
    scored = [(sequence_score(m, src, c, [PAD, BOS]) / len(c) ** length_penalty, c) for c in candidates]
    best = max(scored)[1]
    best = best[:-1] if best[-1] == EOS else best
    got = beam(m, src, None, beam_size=40, length_penalty=length_penalty, max_len_a=0, max_len_b=limit)
    assert got == [best]


def test_lengths_respect_the_limits_and_specials_are_never_generated():
    m = eos_prone_model(eos_scale=0.0)  # EOS logit 0: sentences tend to run to the limit
    src, mask = sources()
    limits = max_lengths(src, mask, 0.5, 2, m.config.max_len)
    assert limits == [math.floor(0.5 * n + 2) for n in (~mask).sum(1).tolist()]
    for hyps in (
        greedy(m, src, mask, max_len_a=0.5, max_len_b=2),
        beam(m, src, mask, beam_size=3, max_len_a=0.5, max_len_b=2),
    ):
        assert all(len(h) <= lim for h, lim in zip(hyps, limits))
        assert all(tok not in (PAD, BOS, EOS) for h in hyps for tok in h)
    capped = greedy(m, src, mask, max_len_a=10, max_len_b=100)  # capped at model.max_len
    assert max(len(h) for h in capped) <= m.config.max_len


def test_beam_size_must_be_positive():
    m = eos_prone_model()
    src, mask = sources(b=1)
    with pytest.raises(ValueError, match="beam_size must be a positive integer, got 0"):
        beam(m, src, mask, beam_size=0)


def test_decoding_restores_training_mode():
    m = eos_prone_model(dropout=0.1)
    m.train()
    src, mask = sources(b=2)
    a = beam(m, src, mask, beam_size=2)
    assert m.training
    assert a == beam(m, src, mask, beam_size=2)  # dropout was off while decoding
