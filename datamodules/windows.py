"""Datasets over a flat token array: random training windows and exhaustive validation windows."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from datamodules.sharding import rank_and_world
from datamodules.token_cache import read_meta
from errors import ConfigError


def load_tokens(path: str | Path) -> np.ndarray:
    """A token file written by the data modules: a flat, memory-mapped array of the dtype its meta.json
    names (uint16 or uint32; uint16 for a bare file)."""
    return np.memmap(path, dtype=read_meta(path).get("dtype", "uint16"), mode="r")


class RandomWindows(IterableDataset):
    """An endless stream of (x, y) batches of random windows, y = x shifted by one (nanoGPT's get_batch).

    Batch number b (counted from the start of training) is drawn from a generator seeded by (seed, rank, b):
    DDP ranks see different windows, the stream is the same for any number of loader workers (worker w of W
    draws batches w, w + W, ... and the DataLoader interleaves them in order), and a run resumed after
    `start_batch` batches draws exactly the windows the uninterrupted run draws from there on.
    Yields whole batches (B, T): use it with DataLoader(batch_size=None).
    """

    def __init__(self, path: str | Path, block_size: int, batch_size: int, *, seed: int = 0, start_batch: int = 0):
        self.path, self.block_size, self.batch_size = Path(path), block_size, batch_size
        self.seed, self.start_batch = seed, start_batch
        n = len(load_tokens(self.path))
        if n <= block_size:
            raise ConfigError(f"data.block_size={block_size} needs more than {n} training tokens")

    def __iter__(self):
        data = load_tokens(self.path)
        rank, _ = rank_and_world()
        worker = get_worker_info()
        first, stride = (worker.id, worker.num_workers) if worker else (0, 1)
        t = self.block_size
        offsets = np.arange(t + 1)
        for b in itertools.count(self.start_batch + first, stride):
            starts = np.random.default_rng([self.seed, rank, b]).integers(0, len(data) - t, size=self.batch_size)
            chunk = torch.from_numpy(data[starts[:, None] + offsets].astype(np.int64))  # (B, T + 1)
            yield chunk[:, :-1], chunk[:, 1:]


def batches_drawn(trainer) -> int:
    """Training batches a (resumed) Lightning trainer has consumed: optimizer steps x accumulate_grad_batches."""
    return trainer.global_step * trainer.accumulate_grad_batches if trainer is not None else 0


class EvalWindows(Dataset):
    """Non-overlapping windows that cover every target token of a split exactly once.

    The last window is aligned to the end of the split; targets it shares with the previous window
    are set to -1 (ignored by the loss), so the mean loss is over each token once. The windows are visited in
    bit-reversed order (`spread_order`): a full pass still visits each once, and any first batches
    (trainer.limit_val_batches) are a sample spread evenly over the whole split, not its opening pages.
    """

    def __init__(self, path: str | Path, block_size: int):
        self.path, self.block_size = Path(path), block_size
        n = len(load_tokens(self.path))
        if n <= block_size:
            raise ConfigError(
                f"data.block_size={block_size} is too large for the validation split ({n} tokens): "
                f"lower data.block_size or enlarge the split"
            )
        self.n_targets = n - 1
        starts = np.arange(0, self.n_targets - block_size + 1, block_size)  # an array: splits may be huge
        covered = int(starts[-1]) + block_size
        self.tail_overlap = 0
        if covered < self.n_targets:
            last = self.n_targets - block_size
            self.tail_overlap = covered - last
            starts = np.append(starts, last)
        self.starts = starts
        self.order = spread_order(len(starts))
        self._data: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._data is None:
            self._data = load_tokens(self.path)
        j = int(self.order[i])
        s, t = int(self.starts[j]), self.block_size
        chunk = torch.from_numpy(self._data[s : s + t + 1].astype(np.int64))
        x, y = chunk[:-1], chunk[1:].clone()
        if j == len(self.starts) - 1 and self.tail_overlap:
            y[: self.tail_overlap] = -1
        return x, y


def spread_order(n: int) -> np.ndarray:
    """0..n-1 in bit-reversed (van der Corput) order: every prefix of it is spread evenly over 0..n-1."""
    bits = max(1, (n - 1).bit_length())
    k = np.arange(1 << bits, dtype=np.int64)
    reversed_ = np.zeros_like(k)
    for b in range(bits):
        reversed_ |= ((k >> b) & 1) << (bits - 1 - b)
    return reversed_[reversed_ < n].astype(np.int32 if n < 2**31 else np.int64)
