"""Batches of sentence pairs: padding collation and length-bucketed token-budget batches (DDP-sharded)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from datamodules.parallel_text import Encoded
from datamodules.sharding import rank_and_world
from errors import ConfigError


class PairDataset(Dataset):
    """Item i: (source ids + EOS, target ids, i)."""

    def __init__(self, data: Encoded, eos_id: int):
        self.data, self.eos_id = data, eos_id

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[list[int], list[int], int]:
        return self.data.src_ids[i] + [self.eos_id], self.data.tgt_ids[i], i

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """Padded-tensor lengths per pair: source (with EOS) and target (BOS/EOS + tokens)."""
        src = np.fromiter((len(s) + 1 for s in self.data.src_ids), dtype=np.int64, count=len(self))
        tgt = np.fromiter((len(t) + 1 for t in self.data.tgt_ids), dtype=np.int64, count=len(self))
        return src, tgt


class PadCollate:
    """Pad a list of pairs to the batch's longest source and target.

    Returns src (B, S), tgt_in = BOS + target (B, T), tgt_out = target + EOS (B, T), idx (B,), and the
    texts of the pairs (src_text, tgt_text) for BLEU and examples.
    """

    def __init__(self, data: Encoded, pad_id: int, bos_id: int, eos_id: int):
        self.data, self.pad_id, self.bos_id, self.eos_id = data, pad_id, bos_id, eos_id

    def __call__(self, items: list[tuple[list[int], list[int], int]]) -> dict:
        b = len(items)
        s = max(len(src) for src, _, _ in items)
        t = max(len(tgt) for _, tgt, _ in items) + 1
        src = torch.full((b, s), self.pad_id, dtype=torch.long)
        tgt_in = torch.full((b, t), self.pad_id, dtype=torch.long)
        tgt_out = torch.full((b, t), self.pad_id, dtype=torch.long)
        for row, (x, y, _) in enumerate(items):
            src[row, : len(x)] = torch.tensor(x)
            tgt_in[row, : len(y) + 1] = torch.tensor([self.bos_id, *y])
            tgt_out[row, : len(y) + 1] = torch.tensor([*y, self.eos_id])
        idx = [i for _, _, i in items]
        return {
            "src": src,
            "tgt_in": tgt_in,
            "tgt_out": tgt_out,
            "idx": torch.tensor(idx),
            "src_text": [self.data.src_text[i] for i in idx],
            "tgt_text": [self.data.tgt_text[i] for i in idx],
        }


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Length-bucketed batches: pairs sorted by length are packed while
    batch size x longest side (source or target) <= max_tokens (and batch size <= max_sentences, when set),
    so padding stays small.

    shuffle=True shuffles ties within a length and the order of the batches, differently every epoch
    (seeded). Under DDP each rank takes every world-th batch (the list is padded to a multiple of
    the world size); use it with Trainer(use_distributed_sampler=False).
    """

    def __init__(
        self,
        src_lens: np.ndarray,
        tgt_lens: np.ndarray,
        max_tokens: int,
        *,
        shuffle: bool,
        seed: int = 0,
        max_sentences: int | None = None,
    ):
        self.sizes = np.maximum(np.asarray(src_lens), np.asarray(tgt_lens))
        if len(self.sizes) == 0:
            raise ValueError("no sentence pairs to batch")
        if int(self.sizes.max()) > max_tokens:
            raise ConfigError(
                f"data.max_tokens={max_tokens} cannot hold a pair of {int(self.sizes.max())} tokens: "
                f"raise data.max_tokens to at least data.max_len"
            )
        self.max_tokens, self.shuffle, self.seed, self.epoch = max_tokens, shuffle, seed, 0
        self.max_sentences = max_sentences or len(self.sizes)
        self._len = len(self._batches(0))

    def _batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        if self.shuffle:
            perm = rng.permutation(len(self.sizes))
            order = perm[np.argsort(self.sizes[perm], kind="stable")]
        else:
            order = np.argsort(self.sizes, kind="stable")
        batches, current, longest = [], [], 0
        for i in order.tolist():
            size = int(self.sizes[i])
            full = len(current) == self.max_sentences
            if current and (full or (len(current) + 1) * max(longest, size) > self.max_tokens):
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, size)
        batches.append(current)
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        rank, world = rank_and_world()
        if world > 1:
            batches += batches[: (-len(batches)) % world]
            batches = batches[rank::world]
        return batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        batches = self._batches(self.epoch)
        self.epoch += 1
        yield from batches

    def __len__(self) -> int:
        rank, world = rank_and_world()
        return -(-self._len // world)
