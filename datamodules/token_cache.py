"""Token caches: a text stream tokenized once, piece by piece, into a flat memory-mapped array (nanoGPT's .bin).

A cache is a folder `<key>/` holding tokens.bin (uint16 when the vocabulary fits, else uint32) and meta.json
(dtype, token count, tokenizer, source). It is written into a temporary folder that is renamed into place
once complete, so a failed or interrupted build leaves nothing behind and readers never see half a cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from datamodules.text_tokenizers import Tokenizer
from errors import ConfigError

log = logging.getLogger(__name__)

CACHE_VERSION = 1
PIECE_CHARS = 1 << 20  # characters tokenized at a time
PIECES_PER_BATCH = 8  # pieces handed to a tokenizer together (tiktoken encodes them in parallel threads)
# Places where every tokenizer here starts a new token anyway: before a space between two non-spaces, or after
# a newline between two non-spaces. True for characters and for tiktoken's GPT-2, cl100k and o200k
# pre-tokenizers (a pre-token never spans them), so the pieces' tokens are exactly the whole text's tokens.
CUT = re.compile(r"(?<=\S)(?= \S)|(?<=\S\n)(?=\S)")


def digest(obj) -> str:
    """A short hash of a JSON-able value (cache keys)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def char_slice(chunks: Iterable[str], start: int = 0, stop: int | None = None) -> Iterator[str]:
    """The characters [start, stop) of a text stream, still as a stream."""
    pos = 0
    for chunk in chunks:
        end = pos + len(chunk)
        if end > start:
            yield chunk[max(start - pos, 0) : None if stop is None else max(stop - pos, 0)]
        pos = end
        if stop is not None and pos >= stop:
            return


def safe_pieces(chunks: Iterable[str], size: int = PIECE_CHARS) -> Iterator[str]:
    """Re-cut a text stream into pieces of about `size` characters, each cut at a CUT place; text without
    one (no spaces or newlines between words) is cut every 4 x size characters wherever it is."""
    buf = ""
    for chunk in chunks:
        buf += chunk
        while len(buf) > size:
            m = CUT.search(buf, size)
            if m is None and len(buf) <= 4 * size:
                break  # wait for more text
            cut = m.start() if m is not None else size
            yield buf[:cut]
            buf = buf[cut:]
    if buf:
        yield buf


def write_tokens(dest: Path, pieces: Iterable[str], tokenizer: Tokenizer, *, meta: dict, what: str) -> Path:
    """dest/tokens.bin with the tokens of the text pieces (skipped when dest already holds a cache)."""
    tokens = dest / "tokens.bin"
    if (dest / "meta.json").is_file():
        return tokens
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        dtype, count, start = token_dtype(tokenizer.vocab_size), 0, time.perf_counter()
        with open(tmp / "tokens.bin", "wb") as f:
            for ids in _encoded(tokenizer, pieces):
                ids.astype(dtype).tofile(f)
                count += len(ids)
        if count == 0:
            raise ConfigError(f"{what} holds no text to train or score on")
        info = {**meta, "tokens": count, "dtype": dtype.name, "vocab_size": tokenizer.vocab_size}
        info.update(tokenizer=tokenizer.state_dict(), version=CACHE_VERSION)
        (tmp / "meta.json").write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
        if dest.exists() and not (dest / "meta.json").is_file():
            shutil.rmtree(dest)  # an incomplete folder of unknown origin
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / "meta.json").is_file():  # else another process built the same cache meanwhile
                raise
        seconds = time.perf_counter() - start
        log.info("Tokenized %s: %d tokens (%s) in %.1f s -> %s", what, count, dtype.name, seconds, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tokens


def _encoded(tokenizer: Tokenizer, pieces: Iterable[str]) -> Iterator[np.ndarray]:
    batch: list[str] = []
    for piece in pieces:
        batch.append(piece)
        if len(batch) == PIECES_PER_BATCH:
            yield from tokenizer.encode_arrays(batch)
            batch = []
    if batch:
        yield from tokenizer.encode_arrays(batch)


def read_meta(tokens: str | Path) -> dict:
    """meta.json beside a tokens file ({} for a bare token file)."""
    meta = Path(tokens).with_name("meta.json")
    return json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}
