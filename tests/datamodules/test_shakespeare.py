import hashlib
import http.server
import os
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.files import CorpusUnavailable, fetch
from datamodules.shakespeare import ShakespeareDataModule
from datamodules.text_tokenizers import CharTokenizer, TiktokenTokenizer, build_tokenizer
from datamodules.windows import EvalWindows, RandomWindows


def write_tokens(path: Path, n: int) -> Path:
    np.arange(n, dtype=np.uint16).tofile(path)
    return path


def test_random_windows_are_shifted_pairs(tmp_path):
    path = write_tokens(tmp_path / "t.bin", 1000)
    x, y = next(iter(RandomWindows(path, block_size=16, batch_size=5, seed=0)))
    assert x.shape == y.shape == (5, 16) and x.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)  # tokens are 0..999


def test_random_windows_depend_on_seed_and_resume_step(tmp_path):
    path = write_tokens(tmp_path / "t.bin", 10_000)
    first = lambda **kw: next(iter(RandomWindows(path, 8, 4, **kw)))[0]  # noqa: E731
    assert torch.equal(first(seed=1), first(seed=1))
    assert not torch.equal(first(seed=1), first(seed=2))
    assert not torch.equal(first(seed=1), first(seed=1, start_step=100))


@pytest.mark.parametrize("n, block", [(101, 10), (105, 10), (1000, 64)])
def test_eval_windows_cover_every_target_exactly_once(tmp_path, n, block):
    path = write_tokens(tmp_path / "v.bin", n)
    ds = EvalWindows(path, block)
    targets = torch.cat([ds[i][1] for i in range(len(ds))])
    kept = targets[targets >= 0]
    assert sorted(kept.tolist()) == list(range(1, n))  # target t is token t: each exactly once
    for i in range(len(ds)):
        x, y = ds[i]
        assert torch.equal(x + 1, torch.where(y >= 0, y, x + 1))


def test_eval_windows_reject_block_longer_than_split(tmp_path):
    with pytest.raises(ValueError, match="data.block_size=64 is too large"):
        EvalWindows(write_tokens(tmp_path / "v.bin", 50), 64)


def test_char_tokenizer_round_trip_and_unknown_characters():
    tok = CharTokenizer.from_text("hello world\n")
    assert tok.vocab_size == 9
    assert tok.decode(tok.encode("hello\nworld")) == "hello\nworld"
    with pytest.raises(ValueError, match=r"outside the model's character vocabulary: \['@', 'z'\]"):
        tok.encode("z@")
    assert build_tokenizer(tok.state_dict()).encode("low") == tok.encode("low")


def test_gpt2_tokenizer_round_trip_from_local_cache():
    tok = build_tokenizer({"kind": "tiktoken", "encoding": "gpt2"})
    assert tok.vocab_size == 50257 and tok.encode("hello world") == [31373, 995]  # GPT-2's ids
    ids = tok.encode("ROMEO: But soft, what light")
    assert tok.decode(ids) == "ROMEO: But soft, what light"


def test_missing_tiktoken_files_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr("urllib.request.urlopen", None, raising=False)
    import requests

    def no_network(*a, **k):
        raise requests.ConnectionError("no network in tests")

    monkeypatch.setattr(requests, "get", no_network)
    import tiktoken.registry

    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    with pytest.raises(RuntimeError, match="TIKTOKEN_CACHE_DIR"):
        TiktokenTokenizer("gpt2")


@pytest.fixture(scope="module")
def char_dm(data_dir, tmp_path_factory):
    dm = ShakespeareDataModule(str(data_dir), str(tmp_path_factory.mktemp("cache")), batch_size=4, block_size=32)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_split_is_nanogpt_90_10(char_dm):
    assert char_dm.vocab_size == 65
    assert (len(char_dm.train_tokens), len(char_dm.val_tokens)) == (1_003_854, 111_540)  # nanoGPT's numbers
    text = char_dm.corpus_path.read_text()
    assert char_dm.tokenizer.decode(char_dm.val_tokens[:20].tolist()) == text[1_003_854:1_003_874]


def test_caches_go_to_cache_dir_not_data_dir(char_dm, data_dir):
    for split in ("train", "val"):
        cache = char_dm.tokens_path(split).parent
        assert cache.parent.parent == char_dm.cache_root
        assert {p.name for p in cache.iterdir()} == {"tokens.bin", "meta.json"}
    assert not any(p.suffix == ".bin" for p in data_dir.iterdir())


def test_dataloaders(char_dm):
    x, y = next(iter(char_dm.train_dataloader()))
    assert x.shape == (4, 32) and int(x.max()) < 65
    val = char_dm.val_dataloader()
    assert len(val.dataset) == -(-(111_540 - 1) // 32)  # ceil: the whole split


def test_bpe_split(data_dir, tmp_path):
    dm = ShakespeareDataModule(str(data_dir), str(tmp_path), tokenizer="gpt2", batch_size=2, block_size=64)
    dm.prepare_data()
    dm.setup()
    assert dm.vocab_size == 50257
    assert (len(dm.train_tokens), len(dm.val_tokens)) == (301_966, 36_059)  # nanoGPT's shakespeare/prepare.py


def test_block_size_larger_than_data_raises(data_dir, tmp_path):
    dm = ShakespeareDataModule(str(data_dir), str(tmp_path), batch_size=2, block_size=200_000)
    dm.prepare_data()
    with pytest.raises(ValueError, match="data.block_size=200000 is larger than the data allows"):
        dm.setup()


# --- downloads, against a local HTTP server only ---------------------------------------------


@pytest.fixture
def http_dir(tmp_path):
    """Serve tmp_path/'www' on 127.0.0.1; yields (folder, base url)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_downloads_and_verifies(http_dir, tmp_path):
    root, url = http_dir
    (root / "f.txt").write_bytes(b"to be or not to be\n")
    dest = fetch(
        f"{url}/f.txt", tmp_path / "out" / "f.txt", size=19, md5=hashlib.md5(b"to be or not to be\n").hexdigest()
    )
    assert dest.read_bytes() == b"to be or not to be\n"


@pytest.mark.parametrize(
    "body, match",
    [(b"to be or not", "is 12 bytes, expected 19"), (b"to be or NOT to be\n", "has md5")],
    ids=["truncated", "corrupted"],
)
def test_fetch_rejects_bad_downloads_and_leaves_no_file(http_dir, tmp_path, body, match):
    root, url = http_dir
    (root / "f.txt").write_bytes(body)
    out = tmp_path / "out"
    with pytest.raises(CorpusUnavailable, match=match):
        fetch(f"{url}/f.txt", out / "f.txt", size=19, md5=hashlib.md5(b"to be or not to be\n").hexdigest())
    assert list(out.iterdir()) == []


def test_datamodule_downloads_corpus_from_url(http_dir, data_dir, tmp_path):
    root, url = http_dir
    (root / "input.txt").write_bytes((data_dir / "tinyshakespeare.txt").read_bytes())
    dm = ShakespeareDataModule(str(tmp_path / "data"), str(tmp_path / "cache"), url=f"{url}/input.txt")
    dm.prepare_data()
    assert (tmp_path / "data" / "tinyshakespeare.txt").stat().st_size == 1_115_394
    assert os.listdir(tmp_path / "data") == ["tinyshakespeare.txt"]


def test_missing_corpus_without_network_names_the_fix(tmp_path):
    dm = ShakespeareDataModule(str(tmp_path / "empty"), str(tmp_path / "cache"), url="http://127.0.0.1:9/input.txt")
    with pytest.raises(CorpusUnavailable, match=r"tinyshakespeare.txt is missing.*DATA_DIR"):
        dm.prepare_data()
    assert list((tmp_path / "empty").iterdir()) == []
