"""data=text: corpora generated here (a new alphabet, split files, folders, globs), streamed token caches, errors."""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import numpy as np
import pytest

from datamodules.files import corpus_name, iter_utf8
from datamodules.text import TextDataModule
from datamodules.text_tokenizers import CharTokenizer, TiktokenTokenizer
from datamodules.token_cache import safe_pieces
from datamodules.windows import EvalWindows, RandomWindows, load_tokens

# A corpus no tokenizer here has seen: Greek, Cyrillic, Hebrew, Devanagari, CJK and an emoji, with odd whitespace.
ALPHABET = "αβγδεζηθλμξπστφψω ДЖЗИЛФЦЧШЩЮЯ אבגדהוזחטי कखगघचछजझ 漢字仮名 😀"


def unicode_text(n_lines: int = 300, seed: int = 0) -> str:
    rng = random.Random(seed)
    letters = [c for c in ALPHABET if c != " "]
    lines = [
        " ".join("".join(rng.choices(letters, k=rng.randint(1, 7))) for _ in range(rng.randint(1, 9)))
        for _ in range(n_lines)
    ]
    return "\n".join(lines) + "\n"


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def module(tmp_path, cls=TextDataModule, **kw) -> TextDataModule:
    """A data module (TextDataModule or a subclass) with small batches, prepared and set up."""
    dm = cls(**{"cache_dir": str(tmp_path / "cache"), "batch_size": 4, "block_size": 8, **kw})
    dm.prepare_data()
    dm.setup("fit")
    return dm


def decode(dm, tokens) -> str:
    return dm.tokenizer.decode(np.asarray(tokens).astype(np.int64).tolist())


def test_a_new_alphabet_is_split_by_characters_as_nanogpt(tmp_path):
    text = unicode_text()
    dm = module(tmp_path, path=str(write(tmp_path / "corpus.txt", text)))
    cut = int(len(text) * 0.9)  # characters, not bytes: this text is mostly multi-byte
    assert len(text.encode()) > 1.5 * len(text)
    assert dm.tokenizer.chars == "".join(sorted(set(text)))
    assert (len(dm.train_tokens), len(dm.val_tokens)) == (cut, len(text) - cut)
    assert decode(dm, dm.train_tokens) == text[:cut] and decode(dm, dm.val_tokens) == text[cut:]
    assert dm.train_tokens.dtype == np.uint16
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 8) and (x[:, 1:] == y[:, :-1]).all()


def test_explicit_train_and_val_files(tmp_path):
    train, val = unicode_text(seed=1), "Ωμέγα only in validation.\n"
    dm = module(tmp_path, train=str(write(tmp_path / "a.txt", train)), val=str(write(tmp_path / "b.txt", val)))
    assert decode(dm, dm.train_tokens) == train and decode(dm, dm.val_tokens) == val
    assert "Ω" in dm.tokenizer.chars  # the vocabulary covers every split (nanoGPT: the whole text)


def test_a_folder_a_glob_and_a_list_read_files_in_order(tmp_path):
    root = tmp_path / "books"
    write(root / "b.txt", "second")  # no final newline: one is put between two files
    write(root / "a.txt", "first\n")
    write(root / "sub" / "c.md", "third\n")
    write(root / ".hidden" / "x.txt", "never\n")
    whole = module(tmp_path, path=str(root), val=str(root / "a.txt"), block_size=2)
    assert decode(whole, whole.train_tokens) == "first\nsecond\nthird\n"
    glob = module(tmp_path, path=str(root / "**" / "*.txt"), val=str(root / "a.txt"), block_size=2)
    assert decode(glob, glob.train_tokens) == "first\nsecond"
    files = [str(root / "sub" / "c.md"), str(root / "a.txt")]
    listed = module(tmp_path, path=files, val=str(root / "a.txt"), block_size=2)
    assert decode(listed, listed.train_tokens) == "third\nfirst\n"
    assert corpus_name("text", str(root)) == "books" and corpus_name("text", str(root / "*.txt")) == "books"
    assert corpus_name("text", None, [str(root / "a.txt"), "x"]) == "a+1" and corpus_name("text", None) == "text"


def test_a_vocabulary_beyond_uint16_is_stored_as_uint32(tmp_path):
    points = (*range(0x4E00, 0xA000), *range(0xAC00, 0xD7A4), *range(0x20000, 0x2A6E0))  # Han, Hangul, Han ext. B
    chars = [chr(c) for c in points if chr(c).isprintable()]
    text = "".join(chars) + "".join(reversed(chars))
    dm = module(tmp_path, path=str(write(tmp_path / "han.txt", text)), block_size=64)
    assert dm.vocab_size == len(set(chars)) > 65_536
    assert dm.train_tokens.dtype == np.uint32 and int(dm.train_tokens.max()) >= 65_536
    meta = json.loads(dm.tokens_path("train").with_name("meta.json").read_text())
    assert meta["dtype"] == "uint32" and meta["tokens"] == len(dm.train_tokens)
    assert decode(dm, dm.val_tokens) == text[int(len(text) * 0.9) :]
    x, _ = next(iter(RandomWindows(dm.tokens_path("train"), 64, 2)))
    assert int(x.max()) < dm.vocab_size and len(EvalWindows(dm.tokens_path("val"), 64)) > 0


def test_pieces_tokenize_like_the_whole_text(tmp_path):
    text = ("ROMEO:  Thus\twith a kiss  I die.\n\n\n  \u3000 Да,  ну! 1234 it's x\r\nend \n" + unicode_text(40)) * 30
    pieces = list(safe_pieces([text[i : i + 777] for i in range(0, len(text), 777)], size=500))
    assert "".join(pieces) == text and len(pieces) > 20
    char = CharTokenizer(text)
    assert np.concatenate(char.encode_arrays(pieces)).tolist() == char.encode(text)
    try:
        gpt2 = TiktokenTokenizer("gpt2")
    except RuntimeError:
        pytest.skip("tiktoken's gpt2 files are not cached here")
    assert np.concatenate(gpt2.encode_arrays(pieces)).tolist() == gpt2.encode(text)


def test_caches_are_built_once_and_follow_the_file(tmp_path, caplog):
    path = write(tmp_path / "c.txt", unicode_text())
    first = module(tmp_path, path=str(path))
    with caplog.at_level(logging.INFO):
        again = module(tmp_path, path=str(path))
    assert "Tokenized" not in caplog.text and again.tokens_path("val") == first.tokens_path("val")
    write(path, unicode_text(seed=5))
    changed = module(tmp_path, path=str(path))
    assert changed.tokens_path("val") != first.tokens_path("val")


def test_block_size_larger_than_a_split(tmp_path):
    path = write(tmp_path / "c.txt", "abcdefghij" * 10)
    with pytest.raises(ValueError, match=r"data.block_size=50 is larger than the data allows: the val split has 10"):
        module(tmp_path, path=str(path), block_size=50)


def no_cache_left(tmp_path) -> bool:
    text = tmp_path / "cache" / "text"
    return not text.exists() or not any(p.is_dir() for p in text.iterdir())


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.txt", None, r"data.path=.*missing.txt: no such file or folder"),
        ("empty.txt", b"", r"data.path: .*empty.txt is empty \(0 bytes\)"),
        ("latin1.txt", "Größe\n".encode("latin-1"), r"latin1.txt is not UTF-8 text: byte 0xf6 at byte offset 2"),
        (
            "binary.bin",
            b"\x89PNG\r\n\x1a\n\x00\x00",
            r"binary.bin is a binary file, not text: a NUL byte at byte offset 8",
        ),
    ],
)
def test_bad_files_fail_naming_the_file_and_leave_no_cache(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as err:
        module(tmp_path, path=str(path))
    assert "\n" not in str(err.value)
    assert no_cache_left(tmp_path)


def test_a_bad_byte_far_into_a_file_gets_its_exact_offset(tmp_path):
    path = tmp_path / "big.txt"
    good = ("ü" * 1000 + "\n").encode()  # 2-byte characters across 4 MiB read blocks
    path.write_bytes(good * 5000 + b"\xff tail")
    with pytest.raises(ValueError, match=rf"byte 0xff at byte offset {len(good) * 5000}"):
        for _ in iter_utf8(path):
            pass


def test_a_failing_split_leaves_no_half_cache(tmp_path):
    train = write(tmp_path / "train.txt", "abc abc abc\n" * 100)
    val = tmp_path / "val.txt"
    val.write_bytes(b"abc " * 10 + b"\x00")
    dm = TextDataModule(train=str(train), val=str(val), cache_dir=str(tmp_path / "cache"))
    dm.use_tokenizer(CharTokenizer("abc \n"))  # a checkpoint's: no scan, the val split fails while it is tokenized
    dm.tokens_path("train")
    with pytest.raises(ValueError, match="NUL byte"):
        dm.tokens_path("val")
    left = sorted(p.name for p in (tmp_path / "cache" / "text").iterdir())
    assert len(left) == 1 and (tmp_path / "cache" / "text" / left[0] / "meta.json").is_file()


def test_a_checkpoint_tokenizer_rejects_unknown_characters(tmp_path):
    dm = TextDataModule(path=str(write(tmp_path / "c.txt", "abc xyz\n" * 20)), cache_dir=str(tmp_path / "cache"))
    dm.use_tokenizer(CharTokenizer("abc \n"))
    with pytest.raises(ValueError, match=r"outside the model's character vocabulary: \['x', 'y', 'z'\]"):
        dm.tokens_path("val")


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(tokenizer="sentencepiece"), r"data.tokenizer='sentencepiece' is unknown; choose char, word or a"),
        (dict(path="a.txt", train="b.txt"), r"give data.path or data.train"),
        (dict(block_size=0), r"data.block_size must be a positive integer"),
        (dict(val_fraction=1.0), r"data.val_fraction must be in \(0, 1\)"),
    ],
)
def test_bad_settings_fail_on_construction(kw, message):
    with pytest.raises(ValueError, match=message):
        TextDataModule(**kw)


def test_no_corpus_names_the_field(tmp_path):
    with pytest.raises(ValueError, match=r"data.path is not set"):
        TextDataModule(cache_dir=str(tmp_path)).prepare_data()


def test_load_tokens_reads_the_dtype_from_meta(tmp_path):
    np.arange(70_000, 70_010, dtype=np.uint32).tofile(tmp_path / "tokens.bin")
    (tmp_path / "meta.json").write_text(json.dumps({"dtype": "uint32"}))
    assert load_tokens(tmp_path / "tokens.bin").tolist() == list(range(70_000, 70_010))


def test_moving_data_dir_keeps_the_tiktoken_cache(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir

    import training.config  # noqa: F401  (resolvers)
    from tests.conftest import ROOT

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", ["data=shakespeare_bpe", "data.data_dir=/corpora/elsewhere", "paths.data_dir=/shared"])
    assert cfg.data.tiktoken_dir == "/shared/tiktoken"  # follows paths.data_dir, not the corpus folder
    cached = os.environ.get("TIKTOKEN_CACHE_DIR")
    if not cached or not Path(cached).is_dir():
        pytest.skip("tiktoken's gpt2 files are not cached here")
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    dm = module(
        tmp_path, path=str(write(tmp_path / "c.txt", "Hello world. " * 50)), tokenizer="gpt2", tiktoken_dir=cached
    )
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(Path(cached).resolve())
    assert dm.vocab_size == 50257 and decode(dm, dm.train_tokens) + decode(dm, dm.val_tokens) == "Hello world. " * 50
