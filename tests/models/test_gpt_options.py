"""The GPT family's options (norm, positions, activation, MLP width, tying, head bias, embedding scale): what each
builds, what it computes, and models/sizing.py counting every combination exactly."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from models import memory, sizing
from models.blocks import sinusoidal_positions
from models.gpt import GPT, GPTConfig
from tests.models.test_sizing import saved_bytes

OPTIONS = dict(
    norm=["pre", "post"],
    positions=["learned", "sinusoidal"],
    activation=["gelu", "relu"],
    d_ff=[None, 24],
    tie_embeddings=[True, False],
    head_bias=[False, True],
    embedding_scale=[False, True],
    bias=[True, False],
)
COMBINATIONS = [dict(zip(OPTIONS, values)) for values in itertools.product(*OPTIONS.values())]


def tiny(**kw) -> GPTConfig:
    base = dict(vocab_size=23, block_size=12, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    return GPTConfig(**{**base, **kw})


def component_of(name: str) -> str:
    """Which sizing component a parameter of models.gpt.GPT belongs to."""
    for key, component in (("transformer.wte.", "token_embedding"), ("transformer.wpe.", "position_embedding"),
                           ("lm_head.", "head"), (".ln_", "norms"), ("transformer.ln_f.", "norms"),
                           (".attn.c_attn.", "qkv"), (".attn.c_proj.", "attn_output"), (".mlp.c_fc.", "mlp_up"),
                           (".mlp.c_proj.", "mlp_down")):  # fmt: skip
        if key in name:
            return component
    raise AssertionError(f"unexpected parameter {name}")


@pytest.mark.parametrize("kw", COMBINATIONS, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_sizing_counts_every_combination_exactly(kw):
    cfg = tiny(**kw)
    model = GPT(cfg)
    actual: dict[str, int] = {}
    for name, p in model.named_parameters():  # a tied head's weight is yielded once, as the embedding
        actual[component_of(name)] = actual.get(component_of(name), 0) + p.numel()
    counts = sizing.param_counts(cfg)
    assert counts["attn_query"] + counts["attn_key"] + counts["attn_value"] == actual.pop("qkv")
    assert {k: counts[k] for k in actual} == actual
    assert all(counts[k] == 0 for k in counts.keys() - actual.keys() - {"attn_query", "attn_key", "attn_value"})
    n = sum(p.numel() for p in model.parameters())
    assert sizing.num_params(cfg) == cfg.num_params() == n
    tables = actual["token_embedding"] + actual.get("position_embedding", 0)
    assert cfg.num_params(non_embedding=True) == n - tables
    assert sizing.num_param_tensors(cfg) == len(list(model.parameters()))
    assert sum(r.total for r in sizing.matrix_breakdown(cfg)) == n
    lookups = actual.get("position_embedding", 0) + (0 if cfg.tie_embeddings else actual["token_embedding"])
    assert sizing.flops_per_token(cfg, 8) == 6 * (n - lookups) + 12 * cfg.n_layer * 8 * cfg.n_embd
    logits, loss = model(torch.randint(0, 23, (2, 12)), torch.randint(0, 23, (2, 12)))
    assert logits.shape == (2, 12, 23) and torch.isfinite(loss)


def test_defaults_are_nanogpt_and_keep_the_state_dict_names():
    m = GPT(tiny())
    assert isinstance(m.transformer.ln_f, nn.LayerNorm) and isinstance(m.transformer.h[0].mlp.act, nn.GELU)
    assert m.transformer.h[0].mlp.act.approximate == "none"
    assert m.lm_head.weight is m.transformer.wte.weight and m.lm_head.bias is None
    assert m.transformer.h[0].mlp.c_fc.out_features == 64
    keys = set(m.state_dict())
    assert {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight", "lm_head.weight"} <= keys
    assert not any("pe" == k or k.endswith(".act") for k in keys)


def test_post_ln_blocks_end_in_a_norm_and_the_stack_has_no_final_one():
    torch.manual_seed(0)
    m = GPT(tiny(norm="post")).eval()
    assert isinstance(m.transformer.ln_f, nn.Identity) and not m.transformer.h[0].pre
    seen = {}
    m.transformer.h[-1].ln_2.register_forward_hook(lambda mod, args, out: seen.setdefault("ln_2", out))
    m.lm_head.register_forward_hook(lambda mod, args, out: seen.setdefault("head_input", args[0]))
    m(torch.randint(0, 23, (2, 12)))
    assert torch.equal(seen["head_input"], seen["ln_2"])  # ln(x + mlp(x)) of the last block goes to the head


def test_sinusoidal_positions_replace_the_learned_table():
    torch.manual_seed(0)
    m = GPT(tiny(positions="sinusoidal")).eval()
    assert "wpe" not in m.transformer and "pe" not in m.state_dict()  # a fixed buffer, not saved
    torch.testing.assert_close(m.pe, sinusoidal_positions(12, 16))
    idx = torch.randint(0, 23, (1, 5))
    seen = {}
    m.transformer.drop.register_forward_hook(lambda mod, args, out: seen.setdefault("x", args[0]))
    m(idx)
    torch.testing.assert_close(seen["x"], m.transformer.wte(idx) + sinusoidal_positions(12, 16)[:5])


def test_cached_generation_uses_the_right_sinusoidal_positions():
    torch.manual_seed(0)
    m = GPT(tiny(positions="sinusoidal", norm="post", activation="relu", tie_embeddings=False)).eval()
    idx = torch.randint(0, 23, (2, 10))
    full, _ = m(idx)
    cache = m.new_cache(2)
    parts = [m(idx[:, :4], cache=cache)[0]] + [m(idx[:, i : i + 1], cache=cache)[0] for i in range(4, 10)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-5)


def test_embedding_scale_multiplies_token_embeddings_by_sqrt_c():
    torch.manual_seed(0)
    plain = GPT(tiny()).eval()
    scaled = GPT(tiny(embedding_scale=True)).eval()
    scaled.load_state_dict(plain.state_dict())
    idx = torch.randint(0, 23, (1, 6))
    seen = []
    for m in (plain, scaled):
        m.transformer.drop.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
        m(idx)
    pos = plain.transformer.wpe(torch.arange(6))
    torch.testing.assert_close(seen[1] - pos, (seen[0] - pos) * math.sqrt(16))


def test_relu_untied_head_with_bias():
    m = GPT(tiny(activation="relu", tie_embeddings=False, head_bias=True, d_ff=40))
    assert isinstance(m.transformer.h[0].mlp.act, nn.ReLU)
    assert m.lm_head.weight is not m.transformer.wte.weight and m.lm_head.bias.shape == (23,)
    assert m.transformer.h[1].mlp.c_fc.out_features == 40 == m.config.hidden


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("norm", "sandwich", "model.norm='sandwich' is unknown"),
        ("positions", "rotary", "model.positions='rotary' is unknown"),
        ("activation", "geglu", "model.activation='geglu' is unknown"),
        ("d_ff", 0, "model.d_ff must be a positive integer or null"),
        ("tie_embeddings", "yes", "model.tie_embeddings must be true or false"),
        ("embedding_scale", 1, "model.embedding_scale must be true or false"),
    ],
)
def test_bad_options_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        tiny(**{field: value})


@pytest.mark.parametrize(
    "kw",
    [
        dict(d_ff=96),
        dict(norm="post"),
        dict(activation="relu", tie_embeddings=False, head_bias=True),
        dict(positions="sinusoidal", embedding_scale=True, dropout=0.1),
    ],
)
def test_activation_estimate_follows_the_options(kw):
    torch.manual_seed(0)
    cfg = GPTConfig(**{**dict(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64, dropout=0.0), **kw})
    x = torch.randint(0, 65, (3, 32))
    measured = saved_bytes(GPT(cfg).train(), x, x)
    assert memory.activation_bytes(cfg, 3, 32, precision="32-true", device="cpu") == pytest.approx(measured, rel=0.01)
