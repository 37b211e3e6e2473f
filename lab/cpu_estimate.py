"""A rough duration estimate for training on this CPU, measured in a fraction of a second."""

from __future__ import annotations

import time

import torch

# Share of the measured 512x512 matmul rate that a GPT training step reaches on CPU (measured on 2 cores:
# gpt_small at batch 64 x block 256 ran 20 s/step = 57 GFLOP/s against a 74 GFLOP/s matmul rate).
EFFICIENCY = 0.75


def matmul_flops_per_second(n: int = 512, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def estimate_seconds(flops_per_token: int, tokens_per_step: int, steps: int) -> float:
    return flops_per_token * tokens_per_step * steps / (matmul_flops_per_second() * EFFICIENCY)


def human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
