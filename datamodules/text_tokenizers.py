"""Tokenizers that travel with a checkpoint as a small, JSON-able state dict.

(Not named `tokenizers`: that would shadow Hugging Face's package.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol


class Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...
    def state_dict(self) -> dict: ...


class CharTokenizer:
    """One token per character of the training corpus (nanoGPT's shakespeare_char)."""

    kind = "char"

    def __init__(self, chars: str):
        self.chars = "".join(sorted(set(chars)))
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.vocab_size = len(self.chars)

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(text)

    def encode(self, text: str) -> list[int]:
        unknown = sorted({ch for ch in text if ch not in self.stoi})
        if unknown:
            raise ValueError(
                f"prompt holds characters outside the model's character vocabulary: {unknown!r}; "
                f"the vocabulary is {self.chars!r}"
            )
        return [self.stoi[ch] for ch in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "chars": self.chars}



class TiktokenTokenizer:
    """A tiktoken encoding (GPT-2 BPE by default). Its BPE files come from TIKTOKEN_CACHE_DIR."""

    kind = "tiktoken"

    def __init__(self, encoding: str = "gpt2"):
        import tiktoken

        self.encoding = encoding
        try:
            self.enc = tiktoken.get_encoding(encoding)
        except Exception as err:  # tiktoken raises requests/OS errors when it cannot fetch its files
            cache = os.environ.get("TIKTOKEN_CACHE_DIR", "<unset>")
            raise RuntimeError(
                f"tiktoken encoding {encoding!r} could not be loaded ({type(err).__name__}: {err}). "
                f"Without network access, point TIKTOKEN_CACHE_DIR at a folder with its cached files "
                f"(now TIKTOKEN_CACHE_DIR={cache}; here: ../shared/data/tiktoken)."
            ) from err
        self.vocab_size = self.enc.n_vocab
        self.eot = self.enc.eot_token

    def encode(self, text: str) -> list[int]:
        return self.enc.encode_ordinary(text)

    def decode(self, ids: list[int]) -> str:
        return self.enc.decode(ids)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "encoding": self.encoding}



def rebuild(state: dict, kinds: tuple[type, ...], what: str = "tokenizer"):
    """Rebuild a tokenizer from its state_dict() (as stored in a checkpoint); its kind must be one of kinds.

    A state_dict() is {"kind": ..., **the constructor's arguments}, so rebuilding is calling the class."""
    for cls in kinds:
        if state.get("kind") == cls.kind:
            return cls(**{k: v for k, v in state.items() if k != "kind"})
    raise ValueError(f"unknown {what} kind {state.get('kind')!r}; expected one of {[c.kind for c in kinds]}")


def build_tokenizer(state: dict) -> CharTokenizer | TiktokenTokenizer:
    """A language-model tokenizer from its state_dict()."""
    return rebuild(state, (CharTokenizer, TiktokenTokenizer))


def default_tiktoken_cache(data_dir: str | Path) -> None:
    """Use <data_dir>/tiktoken as tiktoken's cache when TIKTOKEN_CACHE_DIR is unset and it exists."""
    candidate = Path(data_dir) / "tiktoken"
    if "TIKTOKEN_CACHE_DIR" not in os.environ and candidate.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(candidate.resolve())
