"""model.attention: `math` (explicit softmax, checked by hand) matches `sdpa` in one attention layer (causal,
bidirectional, padded) and through the whole GPT; `flash` fails clearly off-GPU and matches `sdpa` on one."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models.attention import Attention, KVCache, math_attention
from models.gpt import GPT, GPTConfig


def pair(**sizes) -> tuple[GPT, GPT]:
    """The same GPT (same weights) with the sdpa and the math attention backend."""
    torch.manual_seed(0)
    cfg = dict(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64, dropout=0.0, bias=True) | sizes
    sdpa = GPT(GPTConfig(**cfg, attention="sdpa"))
    math = GPT(GPTConfig(**cfg, attention="math"))
    math.load_state_dict(sdpa.state_dict())
    return sdpa, math


def test_math_attention_matches_hand_computation():
    q = torch.tensor([[[[1.0, 0.0]]]])  # (1, 1, 1, 2)
    k = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    v = torch.tensor([[[[10.0, 0.0], [0.0, 10.0]]]])
    w = torch.softmax(torch.tensor([1.0, 0.0]) / 2**0.5, dim=0)
    torch.testing.assert_close(math_attention(q, k, v)[0, 0, 0], w[0] * v[0, 0, 0] + w[1] * v[0, 0, 1])


@pytest.mark.parametrize("causal", [True, False])
def test_math_matches_sdpa_in_one_layer_with_padding(causal):
    torch.manual_seed(0)
    fast = Attention(32, 4, causal=causal, backend="sdpa").eval()
    ref = Attention(32, 4, causal=causal, backend="math").eval()
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(2, 9, 32)
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[1, 6:] = True
    torch.testing.assert_close(fast(x), ref(x))
    torch.testing.assert_close(fast(x, key_padding_mask=pad), ref(x, key_padding_mask=pad))


@pytest.mark.parametrize(
    "backend, t, cached, padded, masks",
    [
        ("sdpa", 6, 0, False, 0),  # the square causal case: SDPA's is_causal, no mask
        ("sdpa", 1, 5, False, 0),  # one new query sees every cached key
        ("sdpa", 3, 5, False, 1),  # a query block after a cache: bottom-right aligned causal mask
        ("sdpa", 6, 0, True, 1),  # padding
        ("math", 6, 0, False, 1),  # the explicit softmax takes its causal mask as a tensor
    ],
)
def test_a_mask_is_built_only_when_one_is_used(monkeypatch, backend, t, cached, padded, masks):
    import models.attention

    built = []
    real = models.attention.build_mask

    def counting(*args, **kw):
        mask = real(*args, **kw)
        built.extend([mask] if mask is not None else [])  # None: nothing was built
        return mask

    monkeypatch.setattr(models.attention, "build_mask", counting)
    attn = Attention(16, 2, causal=True, backend=backend).eval()
    cache = None
    if cached:
        cache = KVCache(2, 2, 16, 8, device="cpu", dtype=torch.float32)
        attn(torch.randn(2, cached, 16), cache=cache)
        built.clear()
    pad = torch.zeros(2, t, dtype=torch.bool) if padded else None
    attn(torch.randn(2, t, 16), cache=cache, key_padding_mask=pad)
    assert len(built) == masks


def test_math_matches_sdpa_through_the_gpt():
    sdpa, math = pair()
    idx = torch.randint(0, 65, (3, 32), generator=torch.Generator().manual_seed(1))
    targets = torch.roll(idx, -1, dims=1)
    (logits_s, loss_s), (logits_m, loss_m) = sdpa(idx, targets), math(idx, targets)
    torch.testing.assert_close(logits_m, logits_s, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(loss_m, loss_s, atol=1e-6, rtol=1e-6)
    loss_s.backward()
    loss_m.backward()
    grads_s = dict(sdpa.named_parameters())
    for name, p in math.named_parameters():
        torch.testing.assert_close(p.grad, grads_s[name].grad, atol=1e-5, rtol=1e-4, msg=name)


def test_math_matches_sdpa_when_generating_with_the_kv_cache():
    sdpa, math = pair()
    prompt = torch.randint(0, 65, (2, 5), generator=torch.Generator().manual_seed(2))
    out_s = sdpa.eval().generate(prompt, 20, temperature=1.0, top_k=1)
    out_m = math.eval().generate(prompt, 20, temperature=1.0, top_k=1)
    assert torch.equal(out_s, out_m)


def test_flash_fails_clearly_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("flash kernels may exist here: see test_flash_matches_sdpa_on_cuda")
    gpt = GPT(GPTConfig(vocab_size=65, block_size=16, n_layer=1, n_head=2, n_embd=32, attention="flash"))
    with pytest.raises(RuntimeError, match=r"model.attention=flash needs a CUDA GPU.*model.attention=sdpa"):
        gpt(torch.zeros(1, 16, dtype=torch.long))
    attn = Attention(32, 2, causal=True, backend="flash")
    with pytest.raises(RuntimeError, match="flash"):
        attn(torch.zeros(1, 4, 32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_flash_matches_sdpa_on_cuda():
    sdpa, _ = pair(n_embd=128, n_head=2)
    flash = GPT(dataclasses.replace(sdpa.config, attention="flash"))
    flash.load_state_dict(sdpa.state_dict())
    sdpa, flash = sdpa.cuda(), flash.cuda()
    idx = torch.randint(0, 65, (4, 32), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits_s, _ = sdpa(idx)
        logits_f, _ = flash(idx)
    torch.testing.assert_close(logits_f.float(), logits_s.float(), atol=3e-2, rtol=3e-2)
