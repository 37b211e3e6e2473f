"""Parallel corpora for translation: the tokenizer, token-budget batches; where the pairs come from (explicit
files, TSV files, the `<data_dir>/<prefix>.<lang>` layout, splits cut off train) is datamodules/pair_splits.py.

The tokenizer (`data.tokenizer`): a byte-level BPE, GPT-2's BPE, or word- / character-level vocabularies
(datamodules/word_level.py), learnt on the training pairs only; one joint vocabulary, or with
`data.shared_vocab=false` one per side (same pad / BOS / EOS ids). It is cached in cache_dir.
`Multi30kDataModule` adds Multi30k's file names, languages and download; `HFTranslationDataModule` reads
Hugging Face datasets.

Documented behaviour on bad input:
- a missing file: FileNotFoundError naming the field and file (for the prefix layout: the languages found);
- an empty file, a TSV line without a tab: ValueError naming the file (and line);
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
import torch
from torch.utils.data import DataLoader

from datamodules.batching import PadCollate, PairDataset, TokenBudgetBatchSampler
from datamodules.files import atomic_write
from datamodules.pair_splits import SPLITS, Names, PairSplits, as_list
from datamodules.parallel_text import EMPTY_LINES, Encoded, encode_split
from datamodules.subword import (
    BOS,
    EOS,
    PAD,
    BPETokenizer,
    GPT2PairTokenizer,
    HFPairTokenizer,
    JointTokenizer,
    PairTokenizer,
    SeparateTokenizers,
    build_pair_tokenizer,
)
from datamodules.text_tokenizers import default_tiktoken_cache
from datamodules.token_cache import digest
from datamodules.word_level import LEVELS, UNK, check_settings, learn
from errors import ConfigError

log = logging.getLogger(__name__)

TOKENIZERS = ("bpe", "gpt2", *LEVELS)
STAGE_SPLITS = {"validate": ("val",), "test": ("test",)}  # other stages (fit, None): every split
Texts = tuple[list[str], list[str]]


class ParallelCorpusDataModule(PairSplits, L.LightningDataModule):
    """Any parallel corpus; where the pairs come from: the module docstring and datamodules/pair_splits.py.

    tokenizer: "bpe" (byte-level BPE of vocab_size tokens learnt on the training pairs only, cached in cache_dir),
    "gpt2" (tiktoken), "word" or "char" (vocabularies of the tokens seen min_frequency times, at most vocab_size
    (null: no limit), the rest <unk>; words split by `word_split`, `lowercase` for lower-cased text).
    shared_vocab: one vocabulary for both sides, or (false) one per side. limit: keep only the first `limit`
    pairs of every split (quick runs and tests); eval_limit: of the val and test sets only (a quicker BLEU on a
    CPU). max_sentences: at most this many pairs per batch (the tutorials' batch sizes), besides max_tokens.
    """

    family = "seq2seq"

    def __init__(
        self,
        data_dir: str | None = None,
        cache_dir: str = ".cache",
        src_lang: str | None = "de",
        tgt_lang: str | None = "en",
        train: Names = "train",
        val: Names = "val",
        test: Names = "test",
        train_src: Names = None,
        train_tgt: Names = None,
        val_src: Names = None,
        val_tgt: Names = None,
        test_src: Names = None,
        test_tgt: Names = None,
        tsv: Names = None,
        val_tsv: Names = None,
        test_tsv: Names = None,
        val_fraction: float = 0.05,
        test_fraction: float = 0.0,
        tokenizer: str = "bpe",
        vocab_size: int | None = 8000,
        min_frequency: int = 2,
        shared_vocab: bool = True,
        word_split: str = "whitespace",
        lowercase: bool = False,
        max_len: int = 128,
        max_tokens: int = 4096,
        max_sentences: int | None = None,
        val_max_tokens: int | None = None,
        limit: int | None = None,
        eval_limit: int | None = None,
        empty_lines: str = "error",
        num_workers: int = 0,
        seed: int = 1337,
        tiktoken_dir: str | None = None,
    ):
        super().__init__()
        for name, value in (("max_len", max_len), ("max_tokens", max_tokens)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"data.{name} must be a positive integer, got {value!r}")
        if tokenizer in LEVELS:
            check_settings(tokenizer, word_split, min_frequency, vocab_size)
        elif not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size <= 0:
            raise ConfigError(f"data.vocab_size must be a positive integer (the BPE's size), got {vocab_size!r}")
        if tokenizer == "gpt2" and not shared_vocab:
            raise ConfigError("data.tokenizer=gpt2 is one vocabulary: data.shared_vocab=false needs bpe, word or char")
        if max_len < 2:
            raise ConfigError(f"data.max_len must be at least 2 (one token and EOS), got {max_len}")
        if max_tokens < max_len:
            raise ConfigError(
                f"data.max_tokens={max_tokens} is smaller than data.max_len={max_len}: a batch must hold "
                f"at least one sentence of the longest length; raise data.max_tokens"
            )
        for name, value in (("limit", limit), ("eval_limit", eval_limit), ("max_sentences", max_sentences)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ConfigError(f"data.{name} must be a positive integer or null, got {value!r}")
        if tokenizer not in TOKENIZERS:
            raise ConfigError(f"data.tokenizer={tokenizer!r} is unknown; choose one of {TOKENIZERS}")
        if empty_lines not in EMPTY_LINES:
            raise ConfigError(f"data.empty_lines={empty_lines!r} is unknown; choose one of {EMPTY_LINES}")
        for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= frac < 1.0:
                raise ConfigError(f"data.{name} must be in [0, 1), got {frac}")
        if src_lang is not None and src_lang == tgt_lang:
            raise ConfigError(f"data.src_lang and data.tgt_lang are both {src_lang!r}: pick two languages")
        self.data_dir = None if data_dir is None else Path(data_dir).expanduser()
        self.cache_root = Path(cache_dir).expanduser()
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.prefixes = {"train": as_list(train), "val": as_list(val), "test": as_list(test)}
        self.files = {
            "train": (as_list(train_src), as_list(train_tgt)),
            "val": (as_list(val_src), as_list(val_tgt)),
            "test": (as_list(test_src), as_list(test_tgt)),
        }
        self.tsvs = {"train": as_list(tsv), "val": as_list(val_tsv), "test": as_list(test_tsv)}
        for split, (srcs, tgts) in self.files.items():
            if len(srcs) != len(tgts):
                raise ConfigError(
                    f"data.{split}_src names {len(srcs)} file(s) but data.{split}_tgt {len(tgts)}: give one target "
                    f"file per source file"
                )
        self.fractions = {"val": val_fraction, "test": test_fraction}
        if not self.has_pairs("val") and val_fraction <= 0.0:
            raise ConfigError("data.val=null needs data.val_fraction > 0 to cut a validation split off train")
        self.tokenizer_name, self.bpe_vocab_size, self.min_frequency = tokenizer, vocab_size, min_frequency
        self.shared_vocab, self.word_split, self.lowercase = bool(shared_vocab), word_split, bool(lowercase)
        self.tiktoken_dir = tiktoken_dir
        self.max_len, self.max_tokens, self.max_sentences = max_len, max_tokens, max_sentences
        self.val_max_tokens = val_max_tokens or max_tokens
        self.limit, self.eval_limit, self.empty_lines = limit, eval_limit, empty_lines
        self.num_workers, self.seed = num_workers, seed
        self.tokenizer: PairTokenizer | None = None
        self.sets: dict[str, dict[str, Encoded]] = {}  # split -> {set name: pairs}; several test sets
        self.splits: dict[str, Encoded] = {}  # split -> its (first) set: what the loaders read

    # -- tokenizer
    def _tokenizer_path(self, train: Texts) -> Path:
        h = hashlib.md5()
        for side in train:
            for line in side:
                h.update(line.encode("utf-8") + b"\n")
        key = f"{h.hexdigest()[:12]}-bpe{self.bpe_vocab_size}-min{self.min_frequency}"
        if self.tokenizer_name != "bpe" or not self.shared_vocab:  # (a joint BPE keeps its earlier cache name)
            settings = [self.bpe_vocab_size, self.min_frequency, self.shared_vocab, self.word_split, self.lowercase]
            key = f"{h.hexdigest()[:12]}-{self.tokenizer_name}-{digest(settings)}"
        return self.cache_root / "translation" / key / "tokenizer.json"

    def _learn(self, lines: list[str]) -> JointTokenizer:
        """A tokenizer of data.tokenizer's kind learnt on lines (one side, or both sides joined)."""
        if self.tokenizer_name == "bpe":
            return BPETokenizer.train(lines, self.bpe_vocab_size, min_frequency=self.min_frequency)
        spec = learn(
            lines,
            level=self.tokenizer_name,
            split=self.word_split,
            lowercase=self.lowercase,
            min_frequency=self.min_frequency,
            max_size=self.bpe_vocab_size,
            specials=(PAD, BOS, EOS, UNK),
        )
        return HFPairTokenizer(spec)

    def _load_or_train_tokenizer(self, train: Texts) -> PairTokenizer:
        if self.tokenizer_name == "gpt2":
            default_tiktoken_cache(self.tiktoken_dir)
            return GPT2PairTokenizer("gpt2")
        path = self._tokenizer_path(train)
        if path.is_file():
            return build_pair_tokenizer(json.loads(path.read_text(encoding="utf-8")))
        which = "joint" if self.shared_vocab else "source and target"
        log.info("Learning %s %s vocabularies on %d training pairs", which, self.tokenizer_name, len(train[0]))
        if self.shared_vocab:
            tok = self._learn(train[0] + train[1])
        else:
            tok = SeparateTokenizers(self._learn(train[0]).state_dict(), self._learn(train[1]).state_dict())
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(tok.state_dict()), encoding="utf-8"))
        return tok

    def use_tokenizer(self, tokenizer: PairTokenizer) -> None:
        """Tokenize with this tokenizer (a checkpoint's) instead of learning one: the training pairs are then
        read only when a split must be cut off them."""
        self.tokenizer = tokenizer

    # -- Lightning hooks
    def prepare_data(self) -> None:
        """Find (or download) the files and learn the tokenizer once, into the cache."""
        self.ensure_files()
        _, src, tgt = self.read_splits(["train"])["train"][0]
        self._load_or_train_tokenizer((src, tgt))

    def setup(self, stage: str | None = None) -> None:
        """Read and tokenize the splits of a stage (fit and None: all of them; validate: val; test: test)."""
        wanted = [s for s in STAGE_SPLITS.get(stage, SPLITS) if s not in self.sets]
        if not wanted:
            return
        texts = self.read_splits(wanted if self.tokenizer is not None else ["train", *wanted])
        if self.tokenizer is None:
            _, src, tgt = texts["train"][0]
            self.tokenizer = self._load_or_train_tokenizer((src, tgt))
        for split in wanted:
            self.sets[split] = {
                name: encode_split(self.tokenizer, src, tgt, self.max_len, split=split if name == split else name)
                for name, src, tgt in texts.get(split, [])
            }
            if self.sets[split]:
                self.splits[split] = next(iter(self.sets[split].values()))
        log.info(
            "%s->%s pairs: %s; vocabulary %s",
            self.src_lang or "source",
            self.tgt_lang or "target",
            ", ".join(f"{name} {len(v)}" for sets in self.sets.values() for name, v in sets.items()),
            self.vocab_size if self.src_vocab_size is None else f"{self.src_vocab_size} / {self.tgt_vocab_size}",
        )

    @property
    def vocab_size(self) -> int:
        assert self.tokenizer is not None, "call prepare_data() and setup() first"
        return self.tokenizer.vocab_size

    @property
    def src_vocab_size(self) -> int | None:
        """The source vocabulary's size when the sides have separate vocabularies (None: one joint vocabulary)."""
        return getattr(self.tokenizer, "src_vocab_size", None)

    @property
    def tgt_vocab_size(self) -> int | None:
        return getattr(self.tokenizer, "tgt_vocab_size", None)

    @property
    def has_test(self) -> bool:
        """Whether trainer.test has a split to score (data.test=null with no test_fraction: none)."""
        return "test" in self.splits

    def _loader(self, split: str, *, shuffle: bool, max_tokens: int) -> DataLoader:
        if split not in self.splits:
            raise ConfigError(
                f"this corpus has no {split} split: give data.{split}_src/_tgt, data.{split}_tsv, data.{split} "
                f"(a file prefix) or data.{split}_fraction > 0"
            )
        return self.loader(self.splits[split], shuffle=shuffle, max_tokens=max_tokens)

    def loader(self, data: Encoded, *, shuffle: bool, max_tokens: int) -> DataLoader:
        """Token-budget batches of one set of pairs."""
        tok = self.tokenizer
        dataset = PairDataset(data, tok.eos_id)
        sampler = TokenBudgetBatchSampler(
            *dataset.lengths(), max_tokens, shuffle=shuffle, seed=self.seed, max_sentences=self.max_sentences
        )
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
