"""Parallel corpora for translation: reading and checking, a joint tokenizer, token-budget batches.

A corpus is one file per side per split, `<data_dir>/<split>.<lang>`, one sentence a line, line i of
the source translating line i of the target. Without a validation (or test) file, that split is cut
off the training pairs by a seeded random fraction. `Multi30kDataModule` adds Multi30k's file
names, languages and download.

Documented behaviour on bad input:
- source and target files of different line counts: ValueError naming both files and counts;
- empty lines: ValueError naming the file and line (data.empty_lines=error, the default), or the
  pairs are dropped with a warning (data.empty_lines=skip);
- sentences over data.max_len tokens (EOS included): truncated, with one warning per split;
- an unknown language: ValueError listing the languages found (or, for Multi30k, the known ones).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from datamodules.batching import PadCollate, PairDataset, TokenBudgetBatchSampler
from datamodules.files import atomic_write
from datamodules.parallel_text import EMPTY_LINES, Encoded, encode_split, read_pairs
from datamodules.subword import BPETokenizer, GPT2PairTokenizer, PairTokenizer, build_pair_tokenizer
from datamodules.text_tokenizers import default_tiktoken_cache

log = logging.getLogger(__name__)

TOKENIZERS = ("bpe", "gpt2")


class ParallelCorpusDataModule(L.LightningDataModule):
    """Any parallel corpus in `data_dir`: files `<train>.<src_lang>`, `<train>.<tgt_lang>`, and so on.

    val / test: file prefixes, or null to cut val_fraction / test_fraction of the training pairs off
    (seeded). tokenizer: "bpe" (joint byte-level BPE of vocab_size tokens learnt on the training pairs
    only, cached in cache_dir) or "gpt2" (tiktoken). limit: keep only the first `limit` pairs of
    every split (quick runs and tests).
    """

    family = "seq2seq"

    def __init__(
        self,
        data_dir: str = "data",
        cache_dir: str = ".cache",
        src_lang: str = "de",
        tgt_lang: str = "en",
        train: str = "train",
        val: str | None = "val",
        test: str | None = "test",
        val_fraction: float = 0.05,
        test_fraction: float = 0.0,
        tokenizer: str = "bpe",
        vocab_size: int = 8000,
        min_frequency: int = 2,
        max_len: int = 128,
        max_tokens: int = 4096,
        val_max_tokens: int | None = None,
        limit: int | None = None,
        empty_lines: str = "error",
        num_workers: int = 0,
        seed: int = 1337,
    ):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("max_len", max_len), ("max_tokens", max_tokens)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"data.{name} must be a positive integer, got {value!r}")
        if max_len < 2:
            raise ValueError(f"data.max_len must be at least 2 (one token and EOS), got {max_len}")
        if max_tokens < max_len:
            raise ValueError(
                f"data.max_tokens={max_tokens} is smaller than data.max_len={max_len}: a batch must hold "
                f"at least one sentence of the longest length; raise data.max_tokens"
            )
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            raise ValueError(f"data.limit must be a positive integer or null, got {limit!r}")
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"data.tokenizer={tokenizer!r} is unknown; choose one of {TOKENIZERS}")
        if empty_lines not in EMPTY_LINES:
            raise ValueError(f"data.empty_lines={empty_lines!r} is unknown; choose one of {EMPTY_LINES}")
        for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= frac < 1.0:
                raise ValueError(f"data.{name} must be in [0, 1), got {frac}")
        if val is None and val_fraction <= 0.0:
            raise ValueError("data.val=null needs data.val_fraction > 0 to cut a validation split off train")
        if src_lang == tgt_lang:
            raise ValueError(f"data.src_lang and data.tgt_lang are both {src_lang!r}: pick two languages")
        self.data_dir, self.cache_root = Path(data_dir).expanduser(), Path(cache_dir).expanduser()
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.prefixes = {"train": train, "val": val, "test": test}
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.tokenizer_name, self.bpe_vocab_size, self.min_frequency = tokenizer, vocab_size, min_frequency
        self.max_len, self.max_tokens = max_len, max_tokens
        self.val_max_tokens = val_max_tokens or max_tokens
        self.limit, self.empty_lines, self.num_workers, self.seed = limit, empty_lines, num_workers, seed
        self.tokenizer: PairTokenizer | None = None
        self.splits: dict[str, Encoded] = {}

    # -- files
    def path(self, split: str, lang: str) -> Path:
        return self.data_dir / f"{self.prefixes[split]}.{lang}"

    def ensure_files(self) -> None:
        """Check every needed file exists (subclasses download here)."""
        for split, prefix in self.prefixes.items():
            if prefix is None:
                continue
            for lang in (self.src_lang, self.tgt_lang):
                if not self.path(split, lang).is_file():
                    self._missing(split, lang)

    def _missing(self, split: str, lang: str) -> None:
        found = sorted({p.suffix[1:] for p in self.data_dir.glob(f"{self.prefixes[split]}.*")})
        field = "data.src_lang" if lang == self.src_lang else "data.tgt_lang"
        raise FileNotFoundError(
            f"{self.path(split, lang)} does not exist, so {field}={lang!r} has no {split} split here. "
            f"Languages found for {self.data_dir / self.prefixes[split]}.*: {', '.join(found) or 'none'} "
            f"(set data.data_dir, data.{split} or the language pair)"
        )

    def read_splits(self) -> dict[str, tuple[list[str], list[str]]]:
        """The checked text pairs of every split (cut off train where a split has no files)."""
        out = {}
        for split, prefix in self.prefixes.items():
            if prefix is not None:
                src_path, tgt_path = self.path(split, self.src_lang), self.path(split, self.tgt_lang)
                out[split] = read_pairs(src_path, tgt_path, empty_lines=self.empty_lines)
        src, tgt = out["train"]
        rng = np.random.default_rng(self.seed)
        perm = rng.permutation(len(src)).tolist()
        for split, frac in (("val", self.val_fraction), ("test", self.test_fraction)):
            if self.prefixes[split] is None and frac > 0:
                n = max(1, int(round(len(src) * frac)))
                take, perm = sorted(perm[:n]), perm[n:]
                out[split] = ([src[i] for i in take], [tgt[i] for i in take])
        if len(perm) < len(src):
            keep = sorted(perm)
            out["train"] = ([src[i] for i in keep], [tgt[i] for i in keep])
        if self.limit is not None:
            out = {k: (s[: self.limit], t[: self.limit]) for k, (s, t) in out.items()}
        if not out["train"][0]:
            raise ValueError(f"no training pairs left in {self.path('train', self.src_lang)}")
        return out

    # -- tokenizer
    def _tokenizer_path(self, train: tuple[list[str], list[str]]) -> Path:
        h = hashlib.md5()
        for side in train:
            for line in side:
                h.update(line.encode("utf-8") + b"\n")
        key = f"{h.hexdigest()[:12]}-bpe{self.bpe_vocab_size}-min{self.min_frequency}"
        return self.cache_root / "translation" / key / "tokenizer.json"

    def _load_or_train_tokenizer(self, train: tuple[list[str], list[str]]) -> PairTokenizer:
        if self.tokenizer_name == "gpt2":
            default_tiktoken_cache(self.data_dir.parent)
            default_tiktoken_cache(self.data_dir)
            return GPT2PairTokenizer("gpt2")
        path = self._tokenizer_path(train)
        if path.is_file():
            return build_pair_tokenizer(json.loads(path.read_text(encoding="utf-8")))
        log.info("Training a %d-token joint BPE on %d training pairs", self.bpe_vocab_size, len(train[0]))
        tok = BPETokenizer.train(train[0] + train[1], self.bpe_vocab_size, min_frequency=self.min_frequency)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(tok.state_dict()), encoding="utf-8"))
        return tok

    # -- Lightning hooks
    def prepare_data(self) -> None:
        """Find (or download) the files and learn the tokenizer once, into the cache."""
        self.ensure_files()
        self._load_or_train_tokenizer(self.read_splits()["train"])

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is not None:
            return
        self.ensure_files()
        texts = self.read_splits()
        self.tokenizer = self._load_or_train_tokenizer(texts["train"])
        self.splits = {
            split: encode_split(self.tokenizer, src, tgt, self.max_len, split=split)
            for split, (src, tgt) in texts.items()
        }
        log.info(
            "%s->%s pairs: %s; vocabulary %d",
            self.src_lang,
            self.tgt_lang,
            ", ".join(f"{k} {len(v)}" for k, v in self.splits.items()),
            self.tokenizer.vocab_size,
        )

    @property
    def vocab_size(self) -> int:
        assert self.tokenizer is not None, "call prepare_data() and setup() first"
        return self.tokenizer.vocab_size

    @property
    def has_test(self) -> bool:
        """Whether trainer.test has a split to score (data.test=null with no test_fraction: none)."""
        return "test" in self.splits

    def _loader(self, split: str, *, shuffle: bool, max_tokens: int) -> DataLoader:
        if split not in self.splits:
            raise ValueError(
                f"this corpus has no {split} split: give data.{split} (a file prefix) or data.{split}_fraction > 0"
            )
        data, tok = self.splits[split], self.tokenizer
        dataset = PairDataset(data, tok.eos_id)
        sampler = TokenBudgetBatchSampler(*dataset.lengths(), max_tokens, shuffle=shuffle, seed=self.seed)
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=PadCollate(data, tok.pad_id, tok.bos_id, tok.eos_id),
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, max_tokens=self.max_tokens)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, max_tokens=self.val_max_tokens)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, max_tokens=self.val_max_tokens)
