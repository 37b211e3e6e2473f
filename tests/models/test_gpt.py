import pytest
import torch

from models.attention import KVCache
from models.gpt import GPT, GPTConfig
from models.sampling import filter_logits, sample_next


def tiny(**kw) -> GPTConfig:
    base = dict(vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0, bias=True)
    return GPTConfig(**{**base, **kw})


@pytest.fixture
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(tiny()).eval()


def test_forward_shapes_and_loss(model):
    idx = torch.randint(0, 37, (3, 10))
    logits, loss = model(idx, torch.randint(0, 37, (3, 10)))
    assert logits.shape == (3, 10, 37)
    assert loss.ndim == 0 and loss.item() == pytest.approx(torch.log(torch.tensor(37.0)).item(), rel=0.1)
    logits, loss = model(idx, last_only=True)
    assert logits.shape == (3, 1, 37) and loss is None


def test_future_tokens_cannot_change_past_logits(model):
    idx = torch.randint(0, 37, (2, 12))
    changed = idx.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 37
    a, _ = model(idx)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_cached_forward_equals_full_forward(model):
    idx = torch.randint(0, 37, (2, 12))
    full, _ = model(idx)
    cache = model.new_cache(2)
    first, _ = model(idx[:, :5], cache=cache)
    steps = [model(idx[:, i : i + 1], cache=cache)[0] for i in range(5, 12)]
    torch.testing.assert_close(torch.cat([first, *steps], dim=1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("new_tokens", [10, 40])  # 40 slides the window past block_size twice
def test_kv_cache_generation_equals_uncached(model, new_tokens):
    prompt = torch.randint(0, 37, (2, 3))
    kw = dict(temperature=1.0, top_k=20, top_p=0.95)
    a = model.generate(prompt, new_tokens, use_cache=True, generator=torch.Generator().manual_seed(1), **kw)
    b = model.generate(prompt, new_tokens, use_cache=False, generator=torch.Generator().manual_seed(1), **kw)
    assert a.shape == (2, 3 + new_tokens)
    assert torch.equal(a, b)
    assert torch.equal(a[:, :3], prompt)


def test_greedy_generation_is_argmax(model):
    prompt = torch.randint(0, 37, (1, 4))
    out = model.generate(prompt, 1, temperature=0.0)
    logits, _ = model(prompt)
    assert out[0, -1].item() == logits[0, -1].argmax().item()


def test_kv_cache_overflow_raises():
    cache = KVCache(1, 1, 2, 4, device="cpu", dtype=torch.float32)
    with pytest.raises(RuntimeError, match="overflow"):
        cache.append(torch.zeros(1, 1, 3, 4), torch.zeros(1, 1, 3, 4))


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(bias=False), dict(n_layer=3, n_head=4, n_embd=64, block_size=32), dict(vocab_size=50257, n_embd=48)],
)
def test_parameter_count_matches_formula(kw):
    cfg = tiny(**kw)
    model = GPT(cfg)
    assert cfg.num_params() == sum(p.numel() for p in set(model.parameters()))
    c, v, t, n = cfg.n_embd, cfg.vocab_size, cfg.block_size, cfg.n_layer
    b = int(cfg.bias)
    expected = v * c + t * c + n * (12 * c * c + b * 9 * c + (2 + 2 * b) * c) + (1 + b) * c
    assert cfg.num_params() == expected


def test_gpt2_124m_parameter_count():
    assert GPTConfig().num_params() == 124_439_808  # GPT-2 small with its 1024 positions


def test_weight_tying(model):
    assert model.lm_head.weight is model.transformer.wte.weight


def test_residual_projections_use_scaled_init():
    torch.manual_seed(0)
    m = GPT(tiny(n_layer=8, n_embd=128, n_head=4))
    std = m.transformer.h[0].mlp.c_proj.weight.std().item()
    assert std == pytest.approx(0.02 / (2 * 8) ** 0.5, rel=0.1)
    assert m.transformer.h[0].mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(n_embd=30, n_head=4), "model.n_embd=30 is not divisible by model.n_head=4"),
        (dict(n_layer=0), "model.n_layer"),
        (dict(dropout=1.0), "model.dropout"),
        (dict(attention="fancy"), r"model.attention='fancy' is unknown"),
    ],
)
def test_bad_config_raises_naming_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        tiny(**kw)


def test_sequence_longer_than_context_raises(model):
    with pytest.raises(ValueError, match="model.block_size=16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_overfitting_one_batch_drives_loss_near_zero():
    torch.manual_seed(0)
    m = GPT(tiny(n_layer=2, n_embd=64, n_head=4))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    x = torch.randint(0, 37, (4, 16))
    y = torch.roll(x, -1, dims=1)
    for _ in range(150):
        _, loss = m(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_top_k_and_top_p_filtering():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    k2 = filter_logits(logits, top_k=2)
    assert torch.isfinite(k2).tolist() == [[True, True, False, False]]
    p = filter_logits(logits, top_p=0.7)  # 0.5 + 0.3 covers 0.7
    assert torch.isfinite(p).tolist() == [[True, True, False, False]]
    p = filter_logits(logits, top_p=0.85)
    assert torch.isfinite(p).tolist() == [[True, True, True, False]]
    draws = torch.cat([sample_next(logits, top_k=1) for _ in range(5)])
    assert draws.flatten().tolist() == [0] * 5


def test_generate_reports_every_new_token():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    lengths = []
    out = model.generate(torch.zeros(3, 2, dtype=torch.long), 12, on_token=lengths.append)
    assert out.shape == (3, 14) and lengths == list(range(3, 15))  # a window slide (block 8) included
