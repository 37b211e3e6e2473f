"""model.vocab_multiple: embedding and head rows padded (nanoGPT's 50304), counted as they are, never sampled."""

from __future__ import annotations

import pytest
import torch

from models.gpt import GPT, GPTConfig
from models.memory import memory_estimate

SIZES = dict(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32, bias=False)


def test_padded_rows_are_counted_like_the_module_has_them():
    cfg = GPTConfig(**SIZES, vocab_multiple=64)
    assert cfg.padded_vocab_size == 128 and GPTConfig(**SIZES).padded_vocab_size == 65
    assert GPTConfig(**{**SIZES, "vocab_size": 50257}, vocab_multiple=64).padded_vocab_size == 50304
    model = GPT(cfg)
    assert model.transformer.wte.weight.shape == (128, 32) and model.lm_head.weight.shape == (128, 32)
    assert cfg.num_params() == sum(p.numel() for p in model.parameters())
    extra = 6 * (128 - 65) * 32  # 6N grows by the padded rows of the (tied) head
    assert cfg.flops_per_token() - GPTConfig(**SIZES).flops_per_token() == extra
    mem, plain = (memory_estimate(c, 4, 16, device="cpu") for c in (cfg, GPTConfig(**SIZES)))
    assert mem.weights - plain.weights == (128 - 65) * 32 * 4 and mem.activations > plain.activations


def test_padded_ids_are_never_sampled():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SIZES, vocab_multiple=64)).eval()

    def favour_padding(module, inputs, logits):  # make every padded id overwhelmingly likely
        return torch.cat([logits[..., :65], logits[..., 65:] + 100.0], dim=-1)

    model.lm_head.register_forward_hook(favour_padding)
    idx = torch.zeros(4, 1, dtype=torch.long)
    logits, _ = model(idx)
    assert logits.shape[-1] == 128 and logits[..., 65:].min() > logits[..., :65].max()
    out = model.generate(idx, 30, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert int(out.max()) < 65


def test_vocab_multiple_is_checked():
    with pytest.raises(ValueError, match="model.vocab_multiple"):
        GPTConfig(**SIZES, vocab_multiple=0)
