"""Which slice of the data this process reads: its rank and the world size under DDP (0 and 1 otherwise)."""

from __future__ import annotations

import torch


def rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1
