"""Seq2Seq model: config validation, parameter counts, masks (padding, causality), positions, backends."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models.blocks import sinusoidal_positions
from models.seq2seq import Seq2SeqBase, Seq2SeqConfig

PAD = 0


def tiny(**kw) -> Seq2SeqConfig:
    base = dict(vocab_size=40, max_len=24, n_enc_layer=2, n_dec_layer=2, n_head=2, n_embd=16, d_ff=32, dropout=0.0)
    return Seq2SeqConfig(**{**base, **kw})


def model(**kw) -> Seq2SeqBase:
    torch.manual_seed(0)
    return tiny(**kw).build().eval()


SEPARATE = dict(tie_embeddings=False, src_vocab_size=41, tgt_vocab_size=43)  # tokens < 40 on both sides


VARIANTS = [
    dict(),
    dict(norm="post"),
    dict(positions="learned"),
    dict(tie_embeddings=False, bias=False),
    dict(attention="math"),
    dict(activation="relu", head_bias=True, embedding_scale=False, **SEPARATE),
    dict(impl="torch"),
    dict(impl="torch", norm="post", positions="learned", activation="relu", head_bias=True, **SEPARATE),
]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("n_embd", 30, "model.n_embd=30 is not divisible by model.n_head=4"),
        ("vocab_size", 0, "model.vocab_size must be a positive integer"),
        ("max_len", -1, "model.max_len must be a positive integer"),
        ("d_ff", 1.5, "model.d_ff must be a positive integer"),
        ("dropout", 1.0, "model.dropout must be in [0, 1)"),
        ("positions", "rotary", "model.positions='rotary' is unknown"),
        ("norm", "sandwich", "model.norm='sandwich' is unknown"),
        ("attention", "xformers", "model.attention='xformers' is unknown"),
        ("activation", "tanh", "model.activation='tanh' is unknown"),
        ("positions", "rope", "model.positions='rope' is unknown to the seq2seq model; choose one of ('learned', "),
        ("positions", "none", "model.positions='none' is unknown to the seq2seq model"),
        ("activation", "swiglu", "model.activation='swiglu' is unknown to the seq2seq model; choose one of ('gelu', "),
        ("activation", "relu2", "model.activation='relu2' is unknown to the seq2seq model"),
        ("impl", "keras", "model.impl='keras' is unknown"),
        ("src_vocab_size", 0, "model.src_vocab_size must be a positive integer"),
        ("tgt_vocab_size", 500, "model.tie_embeddings=true needs one joint vocabulary"),
        ("embedding_scale", "no", "model.embedding_scale must be true or false"),
    ],
)
def test_config_errors_name_the_field(field, value, message):
    kw = dict(n_head=4, n_embd=32)
    kw[field] = value
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        tiny(**kw)


@pytest.mark.parametrize(
    "kw",
    VARIANTS
    + [
        dict(positions="learned", tie_embeddings=False, norm="post"),
        dict(impl="torch", bias=False, tie_embeddings=False),
        dict(impl="torch", norm="post", head_bias=True, src_vocab_size=7, tie_embeddings=False),
    ],
)
def test_num_params_formula_matches_module(kw):
    cfg = tiny(**kw)
    m = cfg.build()
    assert cfg.num_params() == sum(p.numel() for p in m.parameters())  # a tied tensor once
    tables = {id(mod.weight) for mod in m.modules() if isinstance(mod, torch.nn.Embedding)}
    embedding = sum(p.numel() for p in m.parameters() if id(p) in tables)
    assert cfg.num_params(non_embedding=True) == cfg.num_params() - embedding


def test_config_sizes_of_the_shipped_models():
    small = Seq2SeqConfig(vocab_size=8000, max_len=128, n_enc_layer=4, n_dec_layer=4, n_head=4, n_embd=256, d_ff=1024)
    base = Seq2SeqConfig(vocab_size=8000, max_len=128)  # the defaults are the paper's base model
    assert 9e6 < small.num_params() < 11e6  # "about 10M"
    assert (base.n_enc_layer, base.n_dec_layer, base.n_embd, base.n_head, base.d_ff) == (6, 6, 512, 8, 2048)
    assert base.num_params(non_embedding=True) == pytest.approx(44.1e6, rel=0.01)
    assert Seq2SeqConfig(**small.to_dict()) == small


def test_embeddings_are_tied_to_the_output_layer():
    m = model()
    assert m.src_emb.weight is m.tgt_emb.weight is m.lm_head.weight
    untied = model(tie_embeddings=False)
    assert untied.src_emb.weight is not untied.tgt_emb.weight
    assert untied.lm_head.weight is not untied.tgt_emb.weight


def test_sinusoidal_positions_match_the_paper():
    pe = sinusoidal_positions(50, 16)
    pos, i = 7, 3
    angle = pos / 10000 ** (2 * i / 16)
    assert pe[pos, 2 * i].item() == pytest.approx(torch.sin(torch.tensor(angle)).item(), abs=1e-6)
    assert pe[pos, 2 * i + 1].item() == pytest.approx(torch.cos(torch.tensor(angle)).item(), abs=1e-6)


def batch_with_padding(b=3, s=9, t=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, 40, (b, s), generator=g)
    tgt = torch.randint(3, 40, (b, t), generator=g)
    src_lens, tgt_lens = [s, 5, 2][:b], [t, 4, 1][:b]
    for r in range(b):
        src[r, src_lens[r] :] = PAD
        tgt[r, tgt_lens[r] :] = PAD
    return src, tgt, src_lens, tgt_lens


@pytest.mark.parametrize("kw", VARIANTS)
def test_padding_never_changes_a_real_position(kw):
    """More padding, and different batch-mates, leave every non-padded output unchanged."""
    m = model(**kw)
    src, tgt, src_lens, tgt_lens = batch_with_padding()
    logits = m(src, tgt, src.eq(PAD))  # (B, T, V)
    wider_src = torch.cat((src, torch.full((3, 5), PAD)), 1)
    wider_tgt = torch.cat((tgt, torch.full((3, 4), PAD)), 1)
    wider = m(wider_src, wider_tgt, wider_src.eq(PAD))
    memory, memory_wide = m.encode(src, src.eq(PAD)), m.encode(wider_src, wider_src.eq(PAD))
    for r in range(3):
        alone_src, alone_tgt = src[r : r + 1, : src_lens[r]], tgt[r : r + 1, : tgt_lens[r]]
        alone = m(alone_src, alone_tgt)  # no padding and no mask at all
        torch.testing.assert_close(logits[r, : tgt_lens[r]], alone[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(wider[r, : tgt_lens[r]], alone[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(memory[r, : src_lens[r]], memory_wide[r, : src_lens[r]], atol=1e-5, rtol=1e-5)


def test_padding_content_is_ignored_when_masked():
    m = model()
    src, tgt, _, _ = batch_with_padding()
    mask = src.eq(PAD)
    garbage = src.masked_fill(mask, 17)  # different tokens at the padded positions, same mask
    torch.testing.assert_close(m(src, tgt, mask), m(garbage, tgt, mask))
    assert not torch.allclose(m(src, tgt, mask), m(garbage, tgt, None))  # without the mask they leak


@pytest.mark.parametrize("kw", VARIANTS)
def test_decoder_is_causal(kw):
    m = model(**kw)
    src, tgt, _, _ = batch_with_padding()
    tgt = tgt.masked_fill(tgt.eq(PAD), 5)
    logits = m(src, tgt, src.eq(PAD))
    for j in range(1, tgt.size(1)):
        changed = tgt.clone()
        changed[:, j:] = (changed[:, j:] + 1) % 40
        out = m(src, changed, src.eq(PAD))
        torch.testing.assert_close(out[:, :j], logits[:, :j], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(out[:, j], logits[:, j])


def test_encoder_is_bidirectional_and_feeds_the_decoder():
    m = model()
    src, tgt, _, _ = batch_with_padding()
    changed = src.clone()
    changed[0, -1] = (changed[0, -1] + 1) % 40  # the last source token of the unpadded row
    memory, memory_changed = m.encode(src, src.eq(PAD)), m.encode(changed, changed.eq(PAD))
    assert not torch.allclose(memory[0, 0], memory_changed[0, 0])  # the first position sees the last
    assert not torch.allclose(m(src, tgt, src.eq(PAD))[0, 0], m(changed, tgt, changed.eq(PAD))[0, 0])


def test_backends_agree_with_padding():
    src, tgt, _, _ = batch_with_padding()
    sdpa, math = model(attention="sdpa"), model(attention="math")
    torch.testing.assert_close(sdpa(src, tgt, src.eq(PAD)), math(src, tgt, src.eq(PAD)), atol=1e-5, rtol=1e-5)


def test_cached_decoder_steps_match_the_full_pass():
    m = model()
    src, tgt, _, _ = batch_with_padding()
    mask = src.eq(PAD)
    full = m(src, tgt, mask)
    memory_kv = m.memory_kv(m.encode(src, mask))
    cache = m.new_cache(3, tgt.size(1))
    steps = [m.decode(tgt[:, :3], memory_kv, mask, cache=cache)]  # a prefix, then one token at a time
    steps += [m.decode(tgt[:, j : j + 1], memory_kv, mask, cache=cache) for j in range(3, tgt.size(1))]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_over_long_inputs_get_a_clear_error():
    m = model()
    with pytest.raises(ValueError, match=r"source of 25 tokens exceeds model.max_len=24"):
        m(torch.ones(1, 25, dtype=torch.long), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target of 30 tokens exceeds model.max_len=24"):
        m(torch.ones(1, 5, dtype=torch.long), torch.ones(1, 30, dtype=torch.long))


def test_dropout_only_in_training():
    m = model(dropout=0.3)
    src, tgt, _, _ = batch_with_padding()
    torch.testing.assert_close(m(src, tgt, src.eq(PAD)), m(src, tgt, src.eq(PAD)))
    m.train()
    assert not torch.allclose(m(src, tgt, src.eq(PAD)), m(src, tgt, src.eq(PAD)))


def test_separate_vocabularies_have_their_own_embeddings_and_head():
    m = model(activation="relu", head_bias=True, embedding_scale=False, **SEPARATE)
    assert m.src_emb.weight.shape == (41, 16) and m.tgt_emb.weight.shape == (43, 16)
    assert m.lm_head.weight.shape == (43, 16) and m.lm_head.bias.shape == (43,)
    assert m.lm_head.weight is not m.tgt_emb.weight
    src, tgt, _, _ = batch_with_padding()
    assert m(src, tgt, src.eq(PAD)).shape == (3, 7, 43)
    assert m.config.tgt_vocab == 43 and m.config.src_vocab == 41


def test_vocab_sizes_given_after_construction_are_checked_again():
    cfg = tiny()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.src_vocab_size = 50  # a validated config is never changed in place
    with pytest.raises(ValueError, match=r"model.tie_embeddings=true needs one joint vocabulary.*tie_embeddings=false"):
        dataclasses.replace(cfg, src_vocab_size=50)  # e.g. from a tokenizer: replace validates again
    untied = dataclasses.replace(cfg, src_vocab_size=50, tie_embeddings=False)
    assert untied.build().src_emb.weight.shape == (50, 16) and cfg.src_vocab_size is None


def test_embedding_scale_and_activation_options():
    scaled, plain = model(), model(embedding_scale=False)
    ids = torch.tensor([[3, 4, 5]])
    pe = sinusoidal_positions(24, 16)[:3]
    torch.testing.assert_close(scaled._embed(ids, scaled.src_emb, "source"), scaled.src_emb(ids) * 4.0 + pe)
    torch.testing.assert_close(plain._embed(ids, plain.src_emb, "source"), plain.src_emb(ids) + pe)
    assert isinstance(model(activation="relu").encoder[0].mlp.act, torch.nn.ReLU)
    assert isinstance(model().decoder[0].mlp.act, torch.nn.GELU)  # the default stays GELU


def test_impl_torch_refuses_other_attention_backends():
    with pytest.raises(ValueError, match=r"model.impl=torch runs torch.nn.MultiheadAttention.*model.attention='math'"):
        tiny(impl="torch", attention="math")
