"""Sentence pairs of a parallel corpus: read and checked (equal line counts, empty lines), then tokenized."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from datamodules.files import read_lines
from datamodules.subword import PairTokenizer

log = logging.getLogger(__name__)

EMPTY_LINES = ("error", "skip")


def read_pairs(src_path: Path, tgt_path: Path, *, empty_lines: str = "error") -> tuple[list[str], list[str]]:
    """The sentence pairs of one split, checked: equal line counts, no empty lines (or skipped)."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise ValueError(
            f"parallel files differ in length: {src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}. "
            f"Line i of one must translate line i of the other: fix the corpus (one sentence a line on both sides)"
        )
    empty = [i for i, (s, t) in enumerate(zip(src, tgt)) if not s or not t]
    if empty:
        first = empty[0]
        where = src_path if not src[first] else tgt_path
        if empty_lines == "error":
            raise ValueError(
                f"{len(empty)} empty line(s) in the pair {src_path} / {tgt_path}, the first at line {first + 1} "
                f"of {where}. Remove them, or drop those pairs with data.empty_lines=skip"
            )
        log.warning("Dropped %d pair(s) with an empty side from %s / %s", len(empty), src_path, tgt_path)
        drop = set(empty)
        src = [s for i, s in enumerate(src) if i not in drop]
        tgt = [t for i, t in enumerate(tgt) if i not in drop]
    return src, tgt


@dataclass
class Encoded:
    """One split, tokenized: ids without specials, plus the original text (references for BLEU)."""

    src_ids: list[list[int]]
    tgt_ids: list[list[int]]
    src_text: list[str]
    tgt_text: list[str]

    def __len__(self) -> int:
        return len(self.src_text)


def encode_split(tokenizer: PairTokenizer, src: list[str], tgt: list[str], max_len: int, *, split: str) -> Encoded:
    """Tokenize both sides; cut sentences to max_len - 1 tokens (one position is left for EOS/BOS)."""
    src_ids, tgt_ids = tokenizer.encode_batch(src), tokenizer.encode_batch(tgt)
    long = sum(len(s) >= max_len or len(t) >= max_len for s, t in zip(src_ids, tgt_ids))
    if long:
        log.warning(
            "%d of %d %s pairs are longer than data.max_len=%d tokens (EOS included) and were truncated",
            long,
            len(src),
            split,
            max_len,
        )
    cut = max_len - 1
    return Encoded([s[:cut] for s in src_ids], [t[:cut] for t in tgt_ids], src, tgt)
