"""Weight decay goes to Linear/Embedding weights only, also when FSDP has flattened the parameters."""

from __future__ import annotations

import torch

from lightning_modules.optim import param_groups
from models.gpt import GPT, GPTConfig


def test_decay_on_matrices_only_even_when_flattened():
    model = GPT(GPTConfig(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32, bias=True))
    decay, no_decay = (g["params"] for g in param_groups(model, 0.1))
    expected = [p for p in model.parameters() if p.dim() >= 2]
    assert {id(p) for p in decay} == {id(p) for p in expected} and len(decay) == len(expected)
    assert all(p.dim() == 1 for p in no_decay) and no_decay
    with torch.no_grad():  # FSDP(use_orig_params=True) shows each rank a 1-D shard of every parameter
        for p in model.parameters():
            p.data = p.data.flatten()
    decay_flat, _ = (g["params"] for g in param_groups(model, 0.1))
    assert {id(p) for p in decay_flat} == {id(p) for p in decay}
