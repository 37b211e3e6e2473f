"""Any text corpus for a GPT: files, folders or globs, character, word or tiktoken tokens, streamed into token caches.

The corpus is `path` (a file, a folder, a glob or a list of them, read in that order), its last
`val_fraction` of characters held out for validation as nanoGPT does (`text[:int(n * 0.9)]`); or explicit
`val` files. Every split is tokenized once, piece by piece, into its own memory-mapped cache
(datamodules/token_cache.py), so a corpus of any size trains with flat memory.

Bad input fails with one line naming the field: a missing file, folder or pattern, an empty file, a binary or
non-UTF-8 file (with the byte offset), an unknown tokenizer, a block_size larger than a split.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from datamodules.device_windows import DeviceWindows, check_setting, use_device_windows
from datamodules.files import atomic_write, expand_paths, iter_utf8
from datamodules.text_tokenizers import (
    CharTokenizer,
    TiktokenTokenizer,
    Tokenizer,
    WordTokenizer,
    default_tiktoken_cache,
    tiktoken_encodings,
)
from datamodules.token_cache import char_slice, digest, safe_pieces, write_tokens
from datamodules.windows import EvalWindows, RandomWindows, batches_drawn, load_tokens
from datamodules.word_level import check_settings, learn
from errors import ConfigError

log = logging.getLogger(__name__)

Files = str | Sequence[str] | None


class TextSource(Protocol):
    """Where the text of a split comes from: files here, a dataset's column in datamodules/hf_datasets.py."""

    label: str  # names it in messages

    def identity(self) -> list: ...  # what the caches are keyed on (changes when the text does)
    def chunks(self) -> Iterator[str]: ...  # the text, in blocks of any size


class FileSource:
    """Text files read one after another (a newline is put between two files when the first lacks one)."""

    def __init__(self, spec: str | Sequence[str], field: str):
        self.spec, self.field = spec, field
        self._files: list[Path] | None = None

    @property
    def files(self) -> list[Path]:
        if self._files is None:
            self._files = expand_paths(self.spec, self.field)
        return self._files

    @property
    def label(self) -> str:
        return f"data.{self.field}={self.spec}"

    def identity(self) -> list:
        return [[str(p.resolve()), (st := p.stat()).st_size, st.st_mtime_ns] for p in self.files]

    def chunks(self) -> Iterator[str]:
        for i, path in enumerate(self.files):
            last = ""
            for last in iter_utf8(path):
                yield last
            if not last:
                raise ConfigError(f"data.{self.field}: {path} is empty (no text); remove it or name other files")
            if i + 1 < len(self.files) and not last.endswith("\n"):
                yield "\n"


@dataclass
class Split:
    """Characters [start, stop) of a source (stop None: to its end)."""

    name: str
    source: TextSource
    start: int = 0
    stop: int | None = None

    def chunks(self) -> Iterator[str]:
        return char_slice(self.source.chunks(), self.start, self.stop)


class TextDataModule(L.LightningDataModule):
    """A language-model corpus from text files; see the module docstring.

    tokenizer: "char" (one token per character of the corpus, every split's characters included, as nanoGPT),
    "word" (the words of the training split seen min_frequency times, the rest <unk>; split by `word_split`:
    whitespace or basic_english, `lowercase` to lower-case; datamodules/word_level.py) or a tiktoken encoding
    ("gpt2", "cl100k_base", ...: its files must be in tiktoken's cache, which is `tiktoken_dir` when
    TIKTOKEN_CACHE_DIR is unset). device_resident: draw training windows on the GPU from a
    copy of the training split held there (true | false | auto: on CUDA when it fits; device_windows.py).
    """

    family = "gpt"

    def __init__(
        self,
        path: Files = None,
        train: Files = None,
        val: Files = None,
        cache_dir: str = ".cache",
        tokenizer: str = "char",
        batch_size: int = 64,
        block_size: int = 256,
        val_fraction: float = 0.1,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 1337,
        tiktoken_dir: str | None = None,
        device_resident: bool | str = "auto",
        min_frequency: int = 1,
        word_split: str = "whitespace",
        lowercase: bool = False,
    ):
        super().__init__()
        check_setting(device_resident)
        for name, value in (("batch_size", batch_size), ("block_size", block_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"data.{name} must be a positive integer, got {value!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
        if path is not None and train is not None:
            raise ConfigError("give data.path or data.train (the same thing: the training text), not both")
        if tokenizer not in ("char", "word") and tokenizer not in (encodings := tiktoken_encodings()):
            raise ConfigError(
                f"data.tokenizer={tokenizer!r} is unknown; choose char, word or a tiktoken encoding {encodings}"
            )
        check_settings("word", word_split, min_frequency, None)
        self.word_settings = {"split": word_split, "lowercase": bool(lowercase), "min_frequency": min_frequency}
        self.train_spec, self.train_field = (path, "path") if train is None else (train, "train")
        self.val_spec = val
        self.cache_root = Path(cache_dir).expanduser()
        self.tokenizer_name, self.tiktoken_dir = tokenizer, tiktoken_dir
        self.batch_size, self.block_size = batch_size, block_size
        self.val_fraction, self.val_batch_size = val_fraction, val_batch_size or batch_size
        self.num_workers, self.seed, self.device_resident = num_workers, seed, device_resident
        self.tokenizer: Tokenizer | None = None
        self.train_tokens: np.ndarray | None = None
        self.val_tokens: np.ndarray | None = None
        self._splits: dict[str, Split] = {}

    # -- the text of each split
    def training_source(self) -> TextSource:
        if self.train_spec is None:
            raise ConfigError(
                "data.path is not set: give the corpus as data.path=<file, folder, glob or [list]> "
                "(or data.train= and data.val=)"
            )
        return FileSource(self.train_spec, self.train_field)

    def validation_source(self) -> TextSource | None:
        """Explicit validation text, or None to hold out val_fraction of the training text."""
        return None if self.val_spec is None else FileSource(self.val_spec, "val")

    def split(self, name: str) -> Split:
        """The text of split "train" or "val"; only what that split needs is looked at."""
        if name not in ("train", "val"):
            raise ValueError(f"a language-model corpus has the splits train and val, not {name!r}")
        if name not in self._splits:
            val = self.validation_source()
            if name == "val" and val is not None:
                self._splits[name] = Split("val", val)
            else:
                train = self.training_source()
                if val is not None:
                    self._splits[name] = Split("train", train)
                else:  # nanoGPT: text[:int(n * 0.9)] and text[int(n * 0.9):]
                    cut = int(self.scan(train)["chars"] * (1 - self.val_fraction))
                    self._splits[name] = Split(name, train, *((0, cut) if name == "train" else (cut, None)))
        return self._splits[name]

    def scan(self, source: TextSource) -> dict:
        """Characters and alphabet of a source, read once (cached)."""
        path = self.cache_root / "text" / f"scan-{digest(source.identity())}.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        chars, seen = 0, np.zeros(0x110000, dtype=bool)  # one flag per Unicode code point
        for chunk in source.chunks():
            chars += len(chunk)
            seen[np.frombuffer(chunk.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)] = True
        if chars == 0:
            raise ConfigError(f"{source.label} holds no text")
        result = {"chars": chars, "alphabet": "".join(map(chr, np.flatnonzero(seen).tolist()))}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8"))
        return result

    def text_sample(self, chars: int) -> str:
        """The first `chars` characters of the training text (word accuracy needs its vocabulary)."""
        return "".join(char_slice(self.split("train").chunks(), 0, chars))

    # -- tokens
    def make_tokenizer(self) -> Tokenizer:
        if self.tokenizer_name == "char":
            sources = {id(s.source): s.source for s in (self.split("train"), self.split("val"))}
            return CharTokenizer("".join(self.scan(s)["alphabet"] for s in sources.values()))
        if self.tokenizer_name == "word":
            return self.word_tokenizer()
        default_tiktoken_cache(self.tiktoken_dir)
        return TiktokenTokenizer(self.tokenizer_name)

    def word_tokenizer(self) -> WordTokenizer:
        """The word vocabulary of the training split, learnt once (cached beside the token caches)."""
        train = self.split("train")
        key = digest([train.source.identity(), train.start, train.stop, self.word_settings])
        path = self.cache_root / "text" / f"words-{key}.json"
        if not path.is_file():
            log.info("Learning the word vocabulary of %s", train.source.label)
            spec = learn(safe_pieces(train.chunks()), level="word", **self.word_settings)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: tmp.write_text(spec, encoding="utf-8"))
        return WordTokenizer(path.read_text(encoding="utf-8"))

    def use_tokenizer(self, tokenizer: Tokenizer) -> None:
        """Tokenize with this tokenizer (a checkpoint's) instead of making one from data.tokenizer."""
        self.tokenizer = tokenizer

    def tokens_path(self, name: str) -> Path:
        """The token cache of a split, built when missing: <cache_dir>/text/<key>/tokens.bin."""
        if self.tokenizer is None:
            self.tokenizer = self.make_tokenizer()
        split, state = self.split(name), self.tokenizer.state_dict()
        key = digest([split.source.identity(), split.start, split.stop, state])
        meta = {"source": split.source.label, "split": name, "chars": [split.start, split.stop]}
        what = f"the {name} split of {split.source.label}"
        pieces = safe_pieces(split.chunks())
        return write_tokens(self.cache_root / "text" / key, pieces, self.tokenizer, meta=meta, what=what)

    # -- Lightning hooks
    def prepare_data(self) -> None:
        """Tokenize both splits once into the cache."""
        for name in ("train", "val"):
            self.tokens_path(name)

    def setup(self, stage: str | None = None) -> None:
        if self.train_tokens is not None:
            return
        self.train_tokens, self.val_tokens = (load_tokens(self.tokens_path(n)) for n in ("train", "val"))
        for name, tokens in (("train", self.train_tokens), ("val", self.val_tokens)):
            self.check_block_size(name, len(tokens))

    def check_block_size(self, name: str, tokens: int) -> None:
        if self.block_size >= tokens:
            raise ConfigError(
                f"data.block_size={self.block_size} is larger than the data allows: the {name} split has "
                f"{tokens} tokens; lower data.block_size (or give a larger {name} text)"
            )

    @property
    def vocab_size(self) -> int:
        assert self.tokenizer is not None, "call prepare_data() and setup() first"
        return self.tokenizer.vocab_size

    def train_dataloader(self) -> DataLoader:
        start = batches_drawn(self.trainer)  # a resumed run draws the windows the uninterrupted run draws
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if use_device_windows(self.device_resident, len(self.train_tokens), device):
            rank = self.trainer.global_rank if self.trainer is not None else 0
            return DeviceWindows(  # type: ignore[return-value]  (an iterable of batches, already on the device)
                self.train_tokens, self.block_size, self.batch_size, device=device, seed=self.seed, rank=rank,
                start_batch=start,
            )  # fmt: skip
        dataset = RandomWindows(
            self.tokens_path("train"), self.block_size, self.batch_size, seed=self.seed, start_batch=start
        )
        return DataLoader(dataset, batch_size=None, num_workers=self.num_workers, pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader:
        dataset = EvalWindows(self.tokens_path("val"), self.block_size)
        return DataLoader(dataset, batch_size=self.val_batch_size, shuffle=False, num_workers=self.num_workers)
