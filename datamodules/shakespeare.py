"""Tiny Shakespeare, character-level or GPT-2 BPE, split 90/10 as nanoGPT does."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from datamodules.device_windows import DeviceWindows, check_setting, use_device_windows
from datamodules.files import atomic_write, fetch, md5sum
from datamodules.text_tokenizers import CharTokenizer, TiktokenTokenizer, build_tokenizer, default_tiktoken_cache
from datamodules.windows import EvalWindows, RandomWindows, load_tokens

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SIZE = 1_115_394
MD5 = "6fb458f1232090904fb40fe944165e91"
FILENAME = "tinyshakespeare.txt"


class ShakespeareDataModule(L.LightningDataModule):
    """Corpus in `data_dir` (downloaded when missing), token caches in `cache_dir`.

    tokenizer: "char" (vocabulary = the corpus' characters) or a tiktoken encoding name ("gpt2").
    device_resident: draw training windows on the GPU from a copy of the split held there (true | false |
    auto: on CUDA when it fits; datamodules/device_windows.py).
    """

    def __init__(
        self,
        data_dir: str = "data",
        cache_dir: str = ".cache",
        tokenizer: str = "char",
        batch_size: int = 64,
        block_size: int = 256,
        val_fraction: float = 0.1,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 1337,
        url: str = URL,
        download: bool = True,
        device_resident: bool | str = "auto",
    ):
        super().__init__()
        check_setting(device_resident)
        self.device_resident = device_resident
        for name, value in (("batch_size", batch_size), ("block_size", block_size)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"data.{name} must be a positive integer, got {value!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
        self.data_dir, self.cache_root = Path(data_dir).expanduser(), Path(cache_dir).expanduser()
        self.tokenizer_name, self.batch_size, self.block_size = tokenizer, batch_size, block_size
        self.val_fraction, self.val_batch_size = val_fraction, val_batch_size or batch_size
        self.num_workers, self.seed, self.url, self.download = num_workers, seed, url, download
        self.tokenizer: CharTokenizer | TiktokenTokenizer | None = None
        self.train_tokens: np.ndarray | None = None
        self.val_tokens: np.ndarray | None = None

    @property
    def corpus_path(self) -> Path:
        return self.data_dir / FILENAME

    @property
    def vocab_size(self) -> int:
        assert self.tokenizer is not None, "call prepare_data() and setup() first"
        return self.tokenizer.vocab_size

    def _cache_dir(self) -> Path:
        key = f"{md5sum(self.corpus_path)[:12]}-{self.tokenizer_name}-val{self.val_fraction}"
        return self.cache_root / "shakespeare" / key

    def prepare_data(self) -> None:
        """Find or download the corpus, then tokenize it once into train.bin / val.bin."""
        hint = (
            f"Put {FILENAME} ({SIZE:,} bytes) into {self.data_dir.resolve()}, or point DATA_DIR "
            f"(paths.data_dir) at a folder that has it."
        )
        if self.download:
            fetch(self.url, self.corpus_path, size=SIZE, md5=MD5, hint=hint)
        elif not self.corpus_path.is_file():
            raise FileNotFoundError(f"{self.corpus_path} is missing and data.download=false. {hint}")
        cache = self._cache_dir()
        if (cache / "meta.json").is_file():
            return
        cache.mkdir(parents=True, exist_ok=True)
        text = self.corpus_path.read_text(encoding="utf-8")
        n = len(text)
        split = int(n * (1 - self.val_fraction))
        tokenizer = self._make_tokenizer(text)
        for name, part in (("train", text[:split]), ("val", text[split:])):
            ids = np.array(tokenizer.encode(part), dtype=np.uint16)
            atomic_write(cache / f"{name}.bin", lambda p, ids=ids: ids.tofile(p))
        meta = {"tokenizer": tokenizer.state_dict(), "corpus": str(self.corpus_path), "split_char": split}
        atomic_write(cache / "meta.json", lambda p: p.write_text(json.dumps(meta)))

    def _make_tokenizer(self, text: str) -> CharTokenizer | TiktokenTokenizer:
        if self.tokenizer_name == "char":
            return CharTokenizer.from_text(text)
        default_tiktoken_cache(self.data_dir)
        return TiktokenTokenizer(self.tokenizer_name)

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is not None:
            return
        cache = self._cache_dir()
        meta = json.loads((cache / "meta.json").read_text())
        default_tiktoken_cache(self.data_dir)  # where a tiktoken encoding finds its files
        self.tokenizer = build_tokenizer(meta["tokenizer"])
        self.train_tokens, self.val_tokens = load_tokens(cache / "train.bin"), load_tokens(cache / "val.bin")
        smallest = min(len(self.train_tokens), len(self.val_tokens))
        if self.block_size >= smallest:
            raise ValueError(
                f"data.block_size={self.block_size} is larger than the data allows: the smaller split has "
                f"{smallest} tokens; lower data.block_size"
            )

    def train_dataloader(self) -> DataLoader:
        step = self.trainer.global_step if self.trainer is not None else 0
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if use_device_windows(self.device_resident, len(self.train_tokens), device):
            rank = self.trainer.global_rank if self.trainer is not None else 0
            return DeviceWindows(  # type: ignore[return-value]  (an iterable of batches, already on the device)
                self.train_tokens, self.block_size, self.batch_size, device=device, seed=self.seed, rank=rank,
                start_step=step,
            )  # fmt: skip
        dataset = RandomWindows(
            self._cache_dir() / "train.bin", self.block_size, self.batch_size, seed=self.seed, start_step=step
        )
        return DataLoader(dataset, batch_size=None, num_workers=self.num_workers, pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader:
        dataset = EvalWindows(self._cache_dir() / "val.bin", self.block_size)
        return DataLoader(
            dataset,
            self.val_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
        )
