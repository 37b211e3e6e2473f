"""The modern GPT's options (grouped-query attention, ...): what each computes, that generation with the KV cache
equals generation without it for every one, and that models/sizing.py counts each as the module is built."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models import sizing
from models.attention import apply_rotary, math_attention, rotary_tables
from models.gpt import GPT, GPTConfig
from models.memory import memory_estimate
from tests.models.test_sizing import saved_bytes

BASE = dict(vocab_size=29, block_size=24, n_layer=2, n_head=4, n_embd=32, dropout=0.0)
VARIANTS = {
    "gqa": dict(n_kv_head=2),
    "mqa": dict(n_kv_head=1),
    "rope": dict(positions="rope"),
    "rope-base-500": dict(positions="rope", rope_base=500.0),
    "no-positions": dict(positions="none"),
    "rmsnorm": dict(normalization="rmsnorm"),
    "rmsnorm-post": dict(normalization="rmsnorm", norm="post"),
    "qk-norm": dict(qk_norm=True),
    "qk-norm-rmsnorm-rope": dict(qk_norm=True, normalization="rmsnorm", positions="rope"),
    "relu2": dict(activation="relu2"),
    "swiglu": dict(activation="swiglu"),
    "swiglu-d_ff-48": dict(activation="swiglu", d_ff=48),
    "softcap": dict(logit_softcap=2.0),
    "zero-init": dict(zero_init_proj=True),
    "speedrun": dict(
        positions="rope",
        normalization="rmsnorm",
        qk_norm=True,
        activation="relu2",
        tie_embeddings=False,
        zero_init_proj=True,
        logit_softcap=15.0,
        bias=False,
    ),  # fmt: skip
    "llama": dict(
        positions="rope", normalization="rmsnorm", activation="swiglu", n_kv_head=2, tie_embeddings=False, bias=False
    ),  # fmt: skip
}


def tiny(**kw) -> GPTConfig:
    return GPTConfig(**{**BASE, **kw})


def expand_kv(state: dict, cfg: GPTConfig) -> dict:
    """A grouped-query model's weights as plain multi-head attention's: each key/value head repeated for the
    n_head / n_kv_head query heads it serves (SDPA's enable_gqa grouping)."""
    c, d, g = cfg.n_embd, cfg.head_dim, cfg.kv_heads
    out = dict(state)
    for name, w in state.items():
        if name.endswith("attn.c_attn.weight") or name.endswith("attn.c_attn.bias"):
            q, k, v = w.split([c, g * d, g * d])
            k, v = (z.unflatten(0, (g, d)).repeat_interleave(cfg.n_head // g, 0).flatten(0, 1) for z in (k, v))
            out[name] = torch.cat([q, k, v])
    return out


@pytest.mark.parametrize("attention", ["sdpa", "math"])
@pytest.mark.parametrize("groups", [1, 2])
def test_grouped_query_attention_is_multi_head_attention_with_shared_keys_and_values(attention, groups):
    torch.manual_seed(0)
    gqa = GPT(tiny(n_kv_head=groups, attention=attention, bias=True)).eval()
    assert gqa.transformer.h[0].attn.c_attn.weight.shape == (32 + 2 * groups * 8, 32)
    mha = GPT(tiny(attention=attention, bias=True)).eval()
    mha.load_state_dict(expand_kv(gqa.state_dict(), gqa.config))
    idx = torch.randint(0, 29, (3, 24), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(gqa(idx)[0], mha(idx)[0], rtol=1e-5, atol=1e-5)


def test_n_kv_head_equal_to_n_head_is_plain_multi_head_attention_weight_for_weight():
    torch.manual_seed(0)
    plain = GPT(tiny()).eval()
    same = GPT(tiny(n_kv_head=4)).eval()
    assert {k: v.shape for k, v in same.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    same.load_state_dict(plain.state_dict())
    idx = torch.randint(0, 29, (2, 24))
    assert torch.equal(same(idx)[0], plain(idx)[0])


def test_rotary_scores_depend_on_the_relative_offset_only():
    cos, sin = rotary_tables(128, 8)
    q, k = torch.randn(2, 1, 1, 8, generator=torch.Generator().manual_seed(0))

    def score(m: int, n: int) -> torch.Tensor:  # q at position m against k at position n
        return (apply_rotary(q, cos[m : m + 1], sin[m : m + 1]) * apply_rotary(k, cos[n : n + 1], sin[n : n + 1])).sum()

    for offset in (0, 3, 17):
        torch.testing.assert_close(score(20, 20 - offset), score(40 + offset, 40))  # the same offset, elsewhere
        torch.testing.assert_close(score(5 + offset, 5), score(50 + offset, 50))
    assert not torch.allclose(score(20, 17), score(20, 10))  # another offset, another score
    x = torch.randn(1, 2, 128, 8)
    torch.testing.assert_close(apply_rotary(x, cos, sin).norm(dim=-1), x.norm(dim=-1))  # a rotation
    torch.testing.assert_close(apply_rotary(x, cos[:1], sin[:1])[:, :, :1], x[:, :, :1])  # position 0: none


def test_rope_and_no_positions_have_no_position_table():
    rope, none = GPT(tiny(positions="rope")), GPT(tiny(positions="none"))
    for m in (rope, none):
        assert "wpe" not in m.transformer and not hasattr(m, "pe")
        assert set(m.state_dict()) == set(GPT(tiny()).state_dict()) - {"transformer.wpe.weight"}  # cos, sin unsaved
    assert rope.rope_cos.shape == (24, 4)  # (block_size, head_dim / 2)
    torch.testing.assert_close(rope.rope_cos, rotary_tables(24, 8)[0])
    torch.testing.assert_close(GPT(tiny(positions="rope", rope_base=500.0)).rope_sin, rotary_tables(24, 8, 500.0)[1])


def test_rmsnorm_replaces_every_layernorm():
    m = GPT(tiny(normalization="rmsnorm", qk_norm=True))
    norms = [mod for mod in m.modules() if isinstance(mod, (torch.nn.LayerNorm, torch.nn.RMSNorm))]
    assert len(norms) == 2 * 2 + 2 * 2 + 1 and all(isinstance(n, torch.nn.RMSNorm) for n in norms)  # ln_1, ln_2, q, k
    assert m.transformer.ln_f.normalized_shape == (32,) and m.transformer.h[0].attn.q_norm.normalized_shape == (8,)
    x = torch.randn(2, 5, 32) * 3 + 1
    y = m.transformer.ln_f(x)  # weight 1: x / rms(x), not centred
    torch.testing.assert_close(y, x / x.pow(2).mean(-1, keepdim=True).add(1e-5).sqrt())
    assert not any("bias" in k for k in m.state_dict() if ".ln_" in k or "_norm" in k)  # an RMSNorm has none


@pytest.mark.parametrize("normalization", ["layernorm", "rmsnorm"])
def test_qk_norm_normalises_each_heads_queries_and_keys(normalization):
    torch.manual_seed(0)
    cfg = tiny(qk_norm=True, normalization=normalization, n_kv_head=2)
    attn = GPT(cfg).transformer.h[0].attn.eval()
    with torch.no_grad():
        attn.q_norm.weight.uniform_(0.5, 1.5)
        attn.k_norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 6, 32)
    q, k, v = attn.c_attn(x).split([32, 16, 16], dim=-1)
    q, k, v = (z.unflatten(-1, (-1, 8)).transpose(1, 2) for z in (q, k, v))  # (B, heads, T, D)
    q, k = attn.q_norm(q), attn.k_norm(k)
    expected = math_attention(q, k, v, torch.ones(6, 6, dtype=torch.bool).tril())
    torch.testing.assert_close(attn(x), attn.c_proj(expected.transpose(1, 2).flatten(2)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu2", "swiglu"])
def test_relu2_and_swiglu_mlps_compute_what_they_are_named(activation):
    torch.manual_seed(0)
    mlp = GPT(tiny(activation=activation, bias=True)).transformer.h[0].mlp
    x = torch.randn(2, 3, 32)
    h = x @ mlp.c_fc.weight.T + mlp.c_fc.bias
    if activation == "relu2":
        assert mlp.c_fc.out_features == 128
        h = torch.relu(h) ** 2
    else:  # gate and up side by side in one matrix, F = 8/3 C up to a multiple of 64
        assert mlp.c_fc.out_features == 2 * 128 and mlp.c_proj.in_features == 128
        h = torch.nn.functional.silu(h[..., :128]) * h[..., 128:]
    torch.testing.assert_close(mlp(x), h @ mlp.c_proj.weight.T + mlp.c_proj.bias)


def test_swiglu_hidden_size():
    assert [tiny(activation="swiglu", n_embd=c, n_head=4).hidden for c in (32, 64, 384, 768, 4096)] == [
        128, 192, 1024, 2048, 10944,  # LLaMA rounds to 256: 11008 at 4096
    ]  # fmt: skip
    assert tiny(activation="swiglu", d_ff=48).hidden == 48 and tiny(activation="relu2").hidden == 128


def test_logit_softcap_bounds_the_logits_smoothly_and_the_loss_sees_them():
    torch.manual_seed(0)
    plain = GPT(tiny(tie_embeddings=False)).eval()
    capped = GPT(tiny(tie_embeddings=False, logit_softcap=0.05)).eval()
    capped.load_state_dict(plain.state_dict())
    idx = torch.randint(0, 29, (2, 24))
    (raw, _), (logits, loss) = plain(idx), capped(idx, idx)
    assert raw.abs().max() > 0.05 > logits.abs().max()
    torch.testing.assert_close(logits, 0.05 * torch.tanh(raw / 0.05))
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx.flatten()))
    torch.testing.assert_close(capped(idx, last_only=True)[0], logits[:, -1:])  # generation samples them too


def test_zero_init_proj_starts_every_block_as_the_identity():
    torch.manual_seed(0)
    m = GPT(tiny(zero_init_proj=True, bias=True))
    projections = [p for name, p in m.named_parameters() if name.endswith("c_proj.weight")]
    assert len(projections) == 2 * 2 and all(not p.any() for p in projections)
    assert m.transformer.h[0].mlp.c_fc.weight.std() > 0.01  # the other matrices keep their init
    seen = {}
    m.transformer.drop.register_forward_hook(lambda mod, args, out: seen.setdefault("in", out))
    m.transformer.ln_f.register_forward_hook(lambda mod, args, out: seen.setdefault("out", args[0]))
    idx = torch.randint(0, 29, (2, 24))
    _, loss = m(idx, idx)
    torch.testing.assert_close(seen["out"], seen["in"])  # the residual stream passes the blocks unchanged
    loss.backward()
    assert all(p.grad.abs().sum() > 0 for p in projections)  # and they learn from the first step


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_cached_generation_equals_uncached_for_every_variant(name, attention):
    torch.manual_seed(0)
    model = GPT(tiny(attention=attention, **VARIANTS[name])).eval()
    prompt = torch.randint(0, 29, (2, 5), generator=torch.Generator().manual_seed(2))
    kw = dict(temperature=1.0, top_k=None)
    # 40 new tokens with a 24-token block: the window slides and the cache is refilled on the way
    a = model.generate(prompt, 40, use_cache=True, generator=torch.Generator().manual_seed(3), **kw)
    b = model.generate(prompt, 40, use_cache=False, generator=torch.Generator().manual_seed(3), **kw)
    assert torch.equal(a, b)
    cache = model.new_cache(2)
    assert cache[0].k.shape == (2, model.config.kv_heads, 24, 8)  # the cache holds the key/value heads only
    full, _ = model(prompt)
    parts = [
        model(prompt[:, :3], cache=cache)[0],
        model(prompt[:, 3:4], cache=cache)[0],
        model(prompt[:, 4:], cache=cache)[0],
    ]
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("bias", [True, False])
def test_sizing_counts_every_variant_as_built(name, bias):
    cfg = tiny(**{"bias": bias, **VARIANTS[name]})
    model = GPT(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert cfg.num_params() == n and sizing.num_param_tensors(cfg) == len(list(model.parameters()))
    assert sum(sizing.param_counts(cfg).values()) == sum(r.total for r in sizing.matrix_breakdown(cfg)) == n
    counts = sizing.param_counts(cfg)
    kv, b = cfg.kv_heads * cfg.head_dim, int(cfg.bias)
    assert counts["attn_key"] == counts["attn_value"] == cfg.n_layer * (32 * kv + b * kv)
    mlp = model.transformer.h[0].mlp
    assert counts["mlp_up"] == cfg.n_layer * mlp.c_fc.weight.numel() * (1 + b / 32) and counts["other"] == 0
    tables = [model.transformer.wpe] if cfg.positions == "learned" else []
    tables += [] if cfg.tie_embeddings else [model.transformer.wte]  # a lookup, unless it is the head too
    lookups = sum(t.weight.numel() for t in tables)
    assert cfg.flops_per_token(16) == 6 * (n - lookups) + 12 * cfg.n_layer * 16 * 32  # queries are C wide


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize(
    "attention, dropout, autocast",
    [("sdpa", 0.0, False), ("math", 0.0, False), ("sdpa", 0.1, False), ("sdpa", 0.0, True), ("math", 0.1, True)],
    ids=["sdpa", "math", "sdpa-dropout", "sdpa-bf16", "math-dropout-bf16"],
)
def test_activation_estimate_equals_the_tensors_saved_for_backward(name, attention, dropout, autocast):
    torch.manual_seed(0)
    cfg = tiny(**VARIANTS[name], attention=attention, dropout=dropout)
    x = torch.randint(0, 29, (3, 24))
    measured = saved_bytes(GPT(cfg).train(), x, x, autocast=autocast)
    est = memory_estimate(cfg, 3, 24, precision="bf16-mixed" if autocast else "32-true", device="cpu")
    estimated = est.activations + est.weight_copies  # autocast's weight copies are saved for backward too
    assert estimated == pytest.approx(measured, rel=0.01)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(n_kv_head=3), r"model.n_kv_head=3 must divide model.n_head=4: one of \[1, 2, 4\]"),
        (dict(n_kv_head=0), "model.n_kv_head=0 must divide"),
        (dict(positions="rope", n_head=32), "the head size model.n_embd / model.n_head = 1 must be even"),
        (dict(positions="rope", rope_base=0), "model.rope_base must be a number > 1"),
        (dict(logit_softcap=0), r"model.logit_softcap must be a number > 0 \(the speedrun: 30\) or null, got 0"),
        (dict(logit_softcap="30"), "model.logit_softcap must be a number"),
        (dict(zero_init_proj=1), "model.zero_init_proj must be true or false"),
        (dict(normalization="batchnorm"), "model.normalization='batchnorm' is unknown to the GPT"),
        (dict(qk_norm="yes"), "model.qk_norm must be true or false, got 'yes'"),
        (dict(positions="alibi"), r"model.positions='alibi' is unknown to the GPT; choose one of \('learned', "),
    ],
)
def test_bad_options_name_the_field(kw, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kw)


def test_replace_validates_again():
    with pytest.raises(ValueError, match="model.n_kv_head=3"):
        dataclasses.replace(tiny(), n_kv_head=3)
