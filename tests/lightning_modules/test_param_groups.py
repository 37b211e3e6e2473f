"""Weight decay goes to Linear/Embedding weights only (every parameter in exactly one group, the tied
embedding/head once), also when FSDP has flattened the parameters."""

from __future__ import annotations

import torch

from lightning_modules.optim import param_groups
from models.gpt import GPT, GPTConfig


def test_decay_on_matrices_only_even_when_flattened():
    model = GPT(GPTConfig(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32, bias=True))
    decay_group, no_decay_group = param_groups(model, 0.1)
    assert (decay_group["weight_decay"], no_decay_group["weight_decay"]) == (0.1, 0.0)
    decay, no_decay = decay_group["params"], no_decay_group["params"]
    expected = [p for p in model.parameters() if p.dim() >= 2]
    assert {id(p) for p in decay} == {id(p) for p in expected} and len(decay) == len(expected)
    assert len(decay) == 2 * 4 + 2  # 2 layers x (qkv, proj, fc, proj) + wte (tied to the head) + wpe
    assert all(p.dim() == 1 for p in no_decay) and no_decay
    assert sum(p.numel() for p in decay + no_decay) == model.config.num_params()  # every parameter once
    with torch.no_grad():  # FSDP(use_orig_params=True) shows each rank a 1-D shard of every parameter
        for p in model.parameters():
            p.data = p.data.flatten()
    decay_flat, _ = (g["params"] for g in param_groups(model, 0.1))
    assert {id(p) for p in decay_flat} == {id(p) for p in decay}
