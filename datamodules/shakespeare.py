"""Tiny Shakespeare: a preset of the text corpus, downloaded once (size and md5 checked), split 90/10 as nanoGPT."""

from __future__ import annotations

from pathlib import Path

from datamodules.files import fetch
from datamodules.text import TextDataModule
from errors import MissingFileError

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SIZE = 1_115_394
MD5 = "6fb458f1232090904fb40fe944165e91"
FILENAME = "tinyshakespeare.txt"


class ShakespeareDataModule(TextDataModule):
    """`<data_dir>/tinyshakespeare.txt` (downloaded from `url` when missing), token caches in `cache_dir`.

    tokenizer: "char" (65 characters) or a tiktoken encoding ("gpt2"). The split is nanoGPT's: the first
    90% of the characters train (1,003,854 chars / 301,966 GPT-2 tokens), the rest validates.
    """

    def __init__(
        self,
        data_dir: str = "data",
        cache_dir: str = ".cache",
        *,
        url: str = URL,
        download: bool = True,
        tiktoken_dir: str | None = None,
        **kw,
    ):
        """kw: TextDataModule's settings (tokenizer, batch_size, block_size, val_fraction, ...)."""
        self.data_dir, self.url, self.download = Path(data_dir).expanduser(), url, download
        tiktoken_dir = tiktoken_dir or str(self.data_dir / "tiktoken")
        super().__init__(path=str(self.data_dir / FILENAME), cache_dir=cache_dir, tiktoken_dir=tiktoken_dir, **kw)

    @property
    def corpus_path(self) -> Path:
        return self.data_dir / FILENAME

    def ensure_corpus(self) -> None:
        """Find or download the corpus (size and md5 checked, atomic)."""
        hint = (
            f"Put {FILENAME} ({SIZE:,} bytes) into {self.data_dir.resolve()}, or point DATA_DIR "
            f"(paths.data_dir) at a folder that has it."
        )
        if self.download:
            fetch(self.url, self.corpus_path, size=SIZE, md5=MD5, hint=hint)
        elif not self.corpus_path.is_file():
            raise MissingFileError(f"{self.corpus_path} is missing and data.download=false. {hint}")

    def prepare_data(self) -> None:
        self.ensure_corpus()
        super().prepare_data()

    def split(self, name: str):
        if name not in self._splits:
            self.ensure_corpus()
        return super().split(name)
