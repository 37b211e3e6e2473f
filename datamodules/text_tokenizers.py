"""Tokenizers that travel with a checkpoint as a small, JSON-able state dict.

(Not named `tokenizers`: that would shadow Hugging Face's package.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from errors import ConfigError

# What to do without network, said by every place that cannot get tiktoken's files.
MAKE_DATA_HINT = (
    "`make data` fetches them into <DATA_DIR>/tiktoken where it has network, and that folder can be copied."
)


class Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...
    def encode_arrays(self, texts: list[str]) -> list[np.ndarray]: ...
    def decode(self, ids: list[int]) -> str: ...
    def state_dict(self) -> dict: ...


class UnknownCharacters(ConfigError):
    """Text to encode holds characters the char vocabulary (the training text's characters) does not have."""


class CharTokenizer:
    """One token per character of the training corpus (nanoGPT's shakespeare_char)."""

    kind = "char"

    def __init__(self, chars: str):
        self.chars = "".join(sorted(set(chars)))
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.vocab_size = len(self.chars)
        self._codepoints = np.array([ord(c) for c in self.chars], dtype=np.uint32)  # sorted: id = rank

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(text)

    def encode(self, text: str) -> list[int]:
        unknown = sorted({ch for ch in text if ch not in self.stoi})
        if unknown:
            raise ConfigError(
                f"prompt holds characters outside the model's character vocabulary: {unknown!r}; "
                f"the vocabulary is {self.chars!r}"
            )
        return [self.stoi[ch] for ch in text]

    def encode_arrays(self, texts: list[str]) -> list[np.ndarray]:
        """encode() of each text as an int64 array, vectorised (corpora of any size)."""
        out = []
        for text in texts:
            points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            ids = np.minimum(np.searchsorted(self._codepoints, points), self.vocab_size - 1)
            if not np.array_equal(self._codepoints[ids], points):
                unknown = sorted({chr(c) for c in points[self._codepoints[ids] != points][:1000].tolist()})
                raise UnknownCharacters(
                    f"the text holds characters outside the model's character vocabulary: {unknown[:20]!r}"
                )
            out.append(ids.astype(np.int64))
        return out

    def decode(self, ids) -> str:
        """The text of ids (a list or an array), vectorised."""
        points = self._codepoints[np.asarray(ids, dtype=np.int64)]
        return points.astype("<u4").tobytes().decode("utf-32-le")

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
                f"(now TIKTOKEN_CACHE_DIR={cache}); {MAKE_DATA_HINT}"
            ) from err
        self.vocab_size = self.enc.n_vocab
        self.eot = self.enc.eot_token

    def encode(self, text: str) -> list[int]:
        return self.enc.encode_ordinary(text)

    def encode_arrays(self, texts: list[str]) -> list[np.ndarray]:
        """encode() of each text as an int64 array; the texts are encoded in parallel threads."""
        batch = self.enc.encode_ordinary_batch(texts, num_threads=min(8, os.cpu_count() or 1))
        return [np.asarray(ids, dtype=np.int64) for ids in batch]

    def decode(self, ids: list[int]) -> str:
        return self.enc.decode(ids)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "encoding": self.encoding}


class WordTokenizer:
    """A word-level vocabulary learnt on the training text (datamodules/word_level.py): words under the minimum
    frequency are <unk>; samples decode with their words joined by spaces."""

    kind = "word"

    def __init__(self, json: str):
        """json: the Hugging Face `tokenizers` definition (vocabulary, normalizer, pre-tokenizer)."""
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_str(json)
        self.vocab_size = self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_arrays(self, texts: list[str]) -> list[np.ndarray]:
        """encode() of each text as an int64 array (the Rust tokenizer encodes the batch in parallel)."""
        return [np.asarray(e.ids, dtype=np.int64) for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids) -> str:
        return self.tok.decode(np.asarray(ids, dtype=np.int64).tolist(), skip_special_tokens=False)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "json": self.tok.to_str()}


def rebuild(state: dict, kinds: tuple[type, ...], what: str = "tokenizer"):
    """Rebuild a tokenizer from its state_dict() (as stored in a checkpoint); its kind must be one of kinds.

    A state_dict() is {"kind": ..., **the constructor's arguments}, so rebuilding is calling the class."""
    for cls in kinds:
        if state.get("kind") == cls.kind:
            return cls(**{k: v for k, v in state.items() if k != "kind"})
    raise ConfigError(f"unknown {what} kind {state.get('kind')!r}; expected one of {[c.kind for c in kinds]}")


def build_tokenizer(state: dict) -> CharTokenizer | TiktokenTokenizer | WordTokenizer:
    """A language-model tokenizer from its state_dict()."""
    return rebuild(state, (CharTokenizer, TiktokenTokenizer, WordTokenizer))


def default_tiktoken_cache(folder: str | Path | None) -> None:
    """Use folder (a data config's tiktoken_dir, `${paths.data_dir}/tiktoken`) as tiktoken's cache when
    TIKTOKEN_CACHE_DIR is unset and the folder exists."""
    if folder and "TIKTOKEN_CACHE_DIR" not in os.environ and Path(folder).expanduser().is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(Path(folder).expanduser().resolve())


def tiktoken_encodings() -> list[str]:
    import tiktoken

    return sorted(tiktoken.list_encoding_names())
