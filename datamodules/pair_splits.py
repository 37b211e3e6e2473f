"""Where a parallel corpus's pairs come from, split by split (the first that is set):
- explicit files, `data.<split>_src=` / `data.<split>_tgt=` (one sentence a line, line i translating line i);
- two-column TSV files, `data.tsv=` (train), `data.val_tsv=`, `data.test_tsv=` (source<TAB>target a line);
- the `<data_dir>/<prefix>.<lang>` layout: `data.data_dir` with `data.train` / `data.val` / `data.test` prefixes
  and `data.src_lang` / `data.tgt_lang`.
Several test sets: a list in any of the test keys (`data.test=[test2016,test2017]`); eval.py scores each.
A split without pairs is cut off the training pairs by a seeded `val_fraction` / `test_fraction`.
Subclasses of ParallelCorpusDataModule change where pairs come from by overriding these methods (Multi30k
downloads in `ensure_files`, Hugging Face datasets give their own `split_sources`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datamodules.parallel_text import FilePair, PairSource, TsvPairs
from errors import ConfigError, MissingFileError

SPLITS = ("train", "val", "test")
Names = str | Sequence[str] | None


def as_list(value: Names) -> list[str]:
    if value is None:
        return []
    return [str(value)] if isinstance(value, (str, Path)) else [str(v) for v in value]


class PairSplits:
    """The split-reading half of ParallelCorpusDataModule. Its __init__ sets what this reads: data_dir (a Path or
    None), src_lang / tgt_lang, prefixes / files / tsvs (split -> names), fractions (val/test -> a share of train),
    seed, limit, eval_limit, empty_lines."""

    data_dir: Path | None
    src_lang: str | None
    tgt_lang: str | None
    prefixes: dict[str, list[str]]
    files: dict[str, tuple[list[str], list[str]]]
    tsvs: dict[str, list[str]]
    fractions: dict[str, float]
    seed: int
    limit: int | None
    eval_limit: int | None
    empty_lines: str

    def uses_layout(self, split: str) -> bool:
        """Whether a split's pairs come from the <data_dir>/<prefix>.<lang> layout (no explicit files)."""
        explicit = self.files[split][0] or self.tsvs[split]
        return self.data_dir is not None and bool(self.prefixes[split]) and not explicit

    def has_pairs(self, split: str) -> bool:
        return bool(self.files[split][0] or self.tsvs[split] or self.uses_layout(split))

    def path(self, split: str, lang: str, prefix: str | None = None) -> Path:
        assert self.data_dir is not None
        return self.data_dir / f"{prefix or self.prefixes[split][0]}.{lang}"

    def split_sources(self, split: str) -> list[PairSource]:
        """The pair sources of a split ([]: none; val and test are then cut off the training pairs)."""
        srcs, tgts = self.files[split]
        fields = (f"data.{split}_src", f"data.{split}_tgt")
        sources: list[PairSource] = [FilePair(Path(a), Path(b), Path(a).stem, fields) for a, b in zip(srcs, tgts)]
        field = "data.tsv" if split == "train" else f"data.{split}_tsv"
        sources += [TsvPairs(Path(t), Path(t).stem, field) for t in self.tsvs[split]]
        if not sources and self.uses_layout(split):
            self._check_languages(split)
            for prefix in self.prefixes[split]:
                src, tgt = self.path(split, self.src_lang, prefix), self.path(split, self.tgt_lang, prefix)
                sources.append(FilePair(src, tgt, prefix, (f"data.{split}", f"data.{split}")))
        if split == "train" and not sources:
            raise ConfigError(
                "no training pairs: give data.train_src= and data.train_tgt= (one sentence a line), data.tsv= "
                "(source<TAB>target), or data.data_dir= with <train>.<src_lang> / <train>.<tgt_lang> files"
            )
        return sources

    def _check_languages(self, split: str) -> None:
        if self.src_lang is None or self.tgt_lang is None:
            raise ConfigError(
                f"data.src_lang and data.tgt_lang name the files {self.data_dir}/<prefix>.<lang> of data.{split}: "
                f"set both (e.g. data.src_lang=de data.tgt_lang=en)"
            )

    def ensure_files(self, splits: Sequence[str] = SPLITS) -> None:
        """Check every file of the prefix layout exists (subclasses download here)."""
        for split in splits:
            if not self.uses_layout(split):
                continue
            self._check_languages(split)
            for prefix in self.prefixes[split]:
                for lang in (self.src_lang, self.tgt_lang):
                    if not self.path(split, lang, prefix).is_file():
                        self._missing(split, lang, prefix)

    def _missing(self, split: str, lang: str, prefix: str) -> None:
        found = sorted({p.suffix[1:] for p in self.data_dir.glob(f"{prefix}.*")})
        field = "data.src_lang" if lang == self.src_lang else "data.tgt_lang"
        raise MissingFileError(
            f"{self.path(split, lang, prefix)} does not exist, so {field}={lang!r} has no {split} split here. "
            f"Languages found for {self.data_dir / prefix}.*: {', '.join(found) or 'none'} "
            f"(set data.data_dir, data.{split} or the language pair)"
        )

    def read_splits(self, splits: Sequence[str] = SPLITS) -> dict[str, list[tuple[str, list[str], list[str]]]]:
        """The checked text pairs of the asked splits, as (set name, sources, targets) lists; a split without
        pairs of its own is cut off the training pairs (so train is read whenever one is)."""
        cut = [s for s in ("val", "test") if not self.has_pairs(s) and self.fractions[s] > 0]
        reading = [s for s in SPLITS if s in splits or (s == "train" and set(cut) & set(splits))]
        self.ensure_files(reading)
        out = {}
        for split in reading:
            sets = [(src.name, *src.read(self.empty_lines)) for src in self.split_sources(split)]
            if split in ("train", "val") and len(sets) > 1:  # one training and one validation set: concatenated
                sets = [(split, [s for _, a, _ in sets for s in a], [t for _, _, b in sets for t in b])]
            if sets:
                out[split] = _unique_names(sets)
        if "train" in out:
            _, src, tgt = out["train"][0]
            perm = np.random.default_rng(self.seed).permutation(len(src)).tolist()
            for split in cut:
                n = max(1, int(round(len(src) * self.fractions[split])))
                take, perm = sorted(perm[:n]), perm[n:]
                if split in splits:
                    out[split] = [(split, [src[i] for i in take], [tgt[i] for i in take])]
            if len(perm) < len(src):
                keep = sorted(perm)
                out["train"] = [("train", [src[i] for i in keep], [tgt[i] for i in keep])]
        for split, sets in out.items():
            caps = [c for c in (self.limit, None if split == "train" else self.eval_limit) if c is not None]
            if caps:
                out[split] = [(name, s[: min(caps)], t[: min(caps)]) for name, s, t in sets]
        if "train" in out and not out["train"][0][1]:
            raise ConfigError("no training pairs left after cutting off val/test: give more pairs or smaller fractions")
        return out


def _unique_names(sets: list[tuple[str, list[str], list[str]]]) -> list[tuple[str, list[str], list[str]]]:
    """Set names made unique (two test files named alike: name, name_2, ...)."""
    seen: dict[str, int] = {}
    out = []
    for name, src, tgt in sets:
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}_{seen[name]}", src, tgt))
    return out
