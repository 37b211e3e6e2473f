"""Sentence pairs of a parallel corpus: read from a pair of files or a two-column TSV and checked (equal line
counts, no empty file, empty lines, a tab on every TSV line), then tokenized."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from datamodules.files import iter_utf8, read_lines
from datamodules.subword import PairTokenizer, sides
from errors import ConfigError, MissingFileError

log = logging.getLogger(__name__)

EMPTY_LINES = ("error", "skip")
Pairs = tuple[list[str], list[str]]


def read_pairs(src_path: Path, tgt_path: Path, *, empty_lines: str = "error") -> Pairs:
    """The sentence pairs of one split, checked: equal line counts, no empty lines (or skipped)."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    for path, lines in ((src_path, src), (tgt_path, tgt)):
        if not lines:
            raise ConfigError(f"{path} is empty: one sentence a line, line i translating line i of the other side")
    if len(src) != len(tgt):
        raise ConfigError(
            f"parallel files differ in length: {src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}. "
            f"Line i of one must translate line i of the other: fix the corpus (one sentence a line on both sides)"
        )
    return drop_empty(src, tgt, (str(src_path), str(tgt_path)), empty_lines)


def read_tsv(path: Path, *, empty_lines: str = "error") -> Pairs:
    """The pairs of a two-column TSV file: source<TAB>target on every line."""
    lines = "".join(iter_utf8(path, translate_newlines=False)).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise ConfigError(f"{path} is empty: one pair a line, source<TAB>target")
    src, tgt = [], []
    for i, line in enumerate(lines):
        cols = line.split("\t")
        if len(cols) != 2:
            problem = "has no tab" if len(cols) == 1 else f"has {len(cols)} tab-separated columns"
            raise ConfigError(f"{path} line {i + 1} {problem}: every line must be source<TAB>target")
        src.append(cols[0].strip())
        tgt.append(cols[1].strip())
    return drop_empty(src, tgt, (f"{path} (source column)", f"{path} (target column)"), empty_lines)


def drop_empty(src: list[str], tgt: list[str], where: tuple[str, str], empty_lines: str) -> Pairs:
    """Pairs with an empty side: an error naming the first (empty_lines=error), or dropped with a warning."""
    empty = [i for i, (s, t) in enumerate(zip(src, tgt)) if not s or not t]
    if empty:
        first = empty[0]
        side = where[0] if not src[first] else where[1]
        if empty_lines == "error":
            raise ConfigError(
                f"{len(empty)} empty line(s) in the pair {where[0]} / {where[1]}, the first at line {first + 1} "
                f"of {side}. Remove them, or drop those pairs with data.empty_lines=skip"
            )
        log.warning("Dropped %d pair(s) with an empty side from %s / %s", len(empty), *where)
        drop = set(empty)
        src = [s for i, s in enumerate(src) if i not in drop]
        tgt = [t for i, t in enumerate(tgt) if i not in drop]
    return src, tgt


class PairSource(Protocol):
    """Where the pairs of one split (or one test set) come from."""

    name: str  # a test set's name in eval outputs (test2016, newstest2019, ...)

    def read(self, empty_lines: str) -> Pairs: ...


@dataclass
class FilePair:
    """A source file and a target file, line i translating line i; `fields` name them in errors."""

    src: Path
    tgt: Path
    name: str
    fields: tuple[str, str]

    def read(self, empty_lines: str) -> Pairs:
        for field, path in zip(self.fields, (self.src, self.tgt)):
            if not path.is_file():
                raise MissingFileError(f"{field}={path}: no such file (from {Path.cwd()})")
        return read_pairs(self.src, self.tgt, empty_lines=empty_lines)


@dataclass
class TsvPairs:
    path: Path
    name: str
    field: str

    def read(self, empty_lines: str) -> Pairs:
        if not self.path.is_file():
            raise MissingFileError(f"{self.field}={self.path}: no such file (from {Path.cwd()})")
        return read_tsv(self.path, empty_lines=empty_lines)


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
    """Tokenize both sides (each with its side's tokenizer); cut sentences to max_len - 1 tokens (one position is
    left for EOS/BOS)."""
    src_tok, tgt_tok = sides(tokenizer)
    src_ids, tgt_ids = src_tok.encode_batch(src), tgt_tok.encode_batch(tgt)
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
