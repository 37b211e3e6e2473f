"""Training windows drawn on the device: nanoGPT's get_batch without the host.

A corpus the size of Tiny Shakespeare (1M tokens, 4 MB as int32) fits any GPU many times over: its training
split is copied to the device once, and each batch is B random windows gathered there. No DataLoader, no
worker processes, no pinned host buffers, no host-to-device copy per step and no host sync, so the CPU can
queue the next steps while the GPU computes. Same windows distribution as `windows.RandomWindows`.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from errors import ConfigError

MAX_SHARE = 0.1  # "auto" keeps the corpus on the device when it takes at most this share of its memory


def check_setting(value) -> None:
    if not (isinstance(value, bool) or value == "auto"):
        raise ConfigError(f"data.device_resident={value!r} is not one of true, false, auto")


def use_device_windows(setting: bool | str, n_tokens: int, device: torch.device) -> bool:
    """Whether to draw training windows on `device`: always (true), never (false), or (auto) on a CUDA
    device when the corpus takes at most MAX_SHARE of its memory as int32."""
    check_setting(setting)
    if setting != "auto":
        return bool(setting)
    if device.type != "cuda":
        return False
    return n_tokens * 4 <= MAX_SHARE * torch.cuda.get_device_properties(device).total_memory


def window_seed(seed: int, rank: int, batch: int) -> int:
    """The generator seed of batch number `batch` of a rank: ranks draw different windows, and a resumed run
    draws exactly the windows the uninterrupted run draws (as windows.RandomWindows does)."""
    return int(np.random.SeedSequence([seed, rank, batch]).generate_state(1, dtype=np.uint64)[0] >> 1)


class DeviceWindows:
    """An endless iterable of (x, y) batches (B, T) of random windows on `device`, y = x shifted by one.

    Window starts are uniform over [0, n - T - 1], as in RandomWindows; the generator lives on the device
    and batch b is drawn after seeding it with (seed, rank, b) (a host-side seed: no sync), so a run resumed
    after `start_batch` batches continues the stream. Hand it to Lightning as the training "dataloader": the
    batches are already where the model is.
    """

    def __init__(
        self,
        tokens: np.ndarray,
        block_size: int,
        batch_size: int,
        *,
        device: torch.device | str,
        seed: int = 0,
        rank: int = 0,
        start_batch: int = 0,
    ):
        n = len(tokens)
        if n <= block_size:
            raise ConfigError(f"data.block_size={block_size} needs more than {n} training tokens")
        self.block_size, self.batch_size, self.device = block_size, batch_size, torch.device(device)
        self.seed, self.rank, self.start_batch = seed, rank, start_batch
        # int32 on the device (half of int64's memory); batches are widened to int64 ids after the gather.
        self.data = torch.from_numpy(np.asarray(tokens, dtype=np.int32)).to(self.device)

    def __iter__(self):
        t = self.block_size
        generator = torch.Generator(device=self.device)
        offsets = torch.arange(t + 1, device=self.device)  # (T + 1,)
        high = len(self.data) - t
        for b in itertools.count(self.start_batch):
            generator.manual_seed(window_seed(self.seed, self.rank, b))
            starts = torch.randint(0, high, (self.batch_size,), generator=generator, device=self.device)  # (B,)
            chunk = self.data[starts[:, None] + offsets].long()  # (B, T + 1)
            yield chunk[:, :-1], chunk[:, 1:]
