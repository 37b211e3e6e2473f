import hashlib
import http.server
import os
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

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


def first_windows(dataset, n: int, **loader) -> list[torch.Tensor]:
    from itertools import islice

    return [x for x, _ in islice(iter(DataLoader(dataset, batch_size=None, **loader)), n)]


def test_random_windows_resume_where_the_stream_left_off(tmp_path):
    path = write_tokens(tmp_path / "t.bin", 10_000)
    stream = first_windows(RandomWindows(path, 8, 4, seed=1), 7)
    resumed = first_windows(RandomWindows(path, 8, 4, seed=1, start_batch=4), 3)
    assert all(torch.equal(a, b) for a, b in zip(stream[4:], resumed, strict=True))  # batches 4, 5, 6 again
    assert not torch.equal(stream[0], stream[4])
    assert not torch.equal(stream[0], first_windows(RandomWindows(path, 8, 4, seed=2), 1)[0])


def test_random_windows_do_not_depend_on_loader_workers(tmp_path):
    path = write_tokens(tmp_path / "t.bin", 10_000)
    alone = first_windows(RandomWindows(path, 8, 4, seed=1, start_batch=3), 5)
    workers = first_windows(RandomWindows(path, 8, 4, seed=1, start_batch=3), 5, num_workers=2)
    assert all(torch.equal(a, b) for a, b in zip(alone, workers, strict=True))


def test_random_windows_differ_between_ranks(tmp_path, monkeypatch):
    path = write_tokens(tmp_path / "t.bin", 10_000)
    rank0 = first_windows(RandomWindows(path, 8, 4, seed=1), 2)
    monkeypatch.setattr("datamodules.windows.rank_and_world", lambda: (1, 2))
    rank1 = first_windows(RandomWindows(path, 8, 4, seed=1), 2)
    assert not any(torch.equal(a, b) for a, b in zip(rank0, rank1))


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


def test_the_first_eval_windows_are_spread_over_the_whole_split(tmp_path):
    """trainer.limit_val_batches takes the first windows: they sample the split, not its opening pages."""
    ds = EvalWindows(write_tokens(tmp_path / "v.bin", 64 * 1000 + 1), 64)
    first = sorted(int(ds[i][0][0]) // 64 for i in range(100))  # window index of each of the first 100
    assert len(set(first)) == 100 and first[0] < 20 and first[-1] > 980  # from the start to the end of the split
    assert max(b - a for a, b in zip(first, first[1:])) < 30  # and evenly: no long stretch left out
    with pytest.raises(IndexError):
        ds[len(ds)]


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


def test_gpt2_tokenizer_round_trip_from_local_cache(gpt2_bpe):
    tok = build_tokenizer({"kind": "tiktoken", "encoding": "gpt2"})
    assert tok.vocab_size == 50257 and tok.encode("hello world") == [31373, 995]  # GPT-2's ids
    ids = tok.encode("ROMEO: But soft, what light")
    assert tok.decode(ids) == "ROMEO: But soft, what light"


def test_missing_tiktoken_files_name_the_fix(tmp_path, monkeypatch):
    """tiktoken falls back to downloading its files: refused here (tests/offline), the error names the fix."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    import tiktoken.registry

    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    with pytest.raises(RuntimeError, match="TIKTOKEN_CACHE_DIR") as err:
        TiktokenTokenizer("gpt2")
    assert "tests never touch the network" in str(err.value)


def datamodule(data_dir, cache, **kw) -> ShakespeareDataModule:
    dm = ShakespeareDataModule(str(data_dir), str(cache), **{"batch_size": 4, "block_size": 32, **kw})
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_split_is_nanogpt_90_10(shakespeare_dir, tmp_path):
    dm = datamodule(shakespeare_dir, tmp_path)
    assert dm.vocab_size == 65
    assert (len(dm.train_tokens), len(dm.val_tokens)) == (1_003_854, 111_540)  # nanoGPT's numbers
    text = dm.corpus_path.read_text()
    assert dm.tokenizer.decode(dm.val_tokens[:20].tolist()) == text[1_003_854:1_003_874]
    assert len(dm.val_dataloader().dataset) == -(-(111_540 - 1) // 32)  # ceil: the whole split


def test_split_caches_and_dataloaders(corpora, tmp_path):
    dm = datamodule(corpora, tmp_path / "cache")
    text = (corpora / "tinyshakespeare.txt").read_text()
    split = int(len(text) * 0.9)
    assert dm.vocab_size == len(set(text))
    assert dm.tokenizer.decode(dm.train_tokens.tolist()) == text[:split]
    assert dm.tokenizer.decode(dm.val_tokens.tolist()) == text[split:]
    for name in ("train", "val"):  # caches go to cache_dir, never to data_dir
        cache = dm.tokens_path(name).parent
        assert cache.parent.parent == dm.cache_root and cache.is_relative_to(tmp_path / "cache")
        assert {p.name for p in cache.iterdir()} == {"tokens.bin", "meta.json"}
    assert not any(p.suffix == ".bin" for p in corpora.iterdir())
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 32) and int(x.max()) < dm.vocab_size
    assert len(dm.val_dataloader().dataset) == -(-(len(text) - split - 1) // 32)


def test_bpe_split(shakespeare_dir, gpt2_bpe, tmp_path):
    dm = datamodule(shakespeare_dir, tmp_path, tokenizer="gpt2", batch_size=2, block_size=64)
    assert dm.vocab_size == 50257
    assert (len(dm.train_tokens), len(dm.val_tokens)) == (301_966, 36_059)  # nanoGPT's shakespeare/prepare.py


def test_block_size_larger_than_data_raises(corpora, tmp_path):
    dm = ShakespeareDataModule(str(corpora), str(tmp_path), batch_size=2, block_size=200_000)
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


def test_datamodule_downloads_corpus_from_url(http_dir, shakespeare_dir, tmp_path):
    root, url = http_dir
    (root / "input.txt").write_bytes((shakespeare_dir / "tinyshakespeare.txt").read_bytes())
    dm = ShakespeareDataModule(str(tmp_path / "data"), str(tmp_path / "cache"), url=f"{url}/input.txt")
    dm.prepare_data()
    assert (tmp_path / "data" / "tinyshakespeare.txt").stat().st_size == 1_115_394
    assert os.listdir(tmp_path / "data") == ["tinyshakespeare.txt"]


def test_missing_corpus_without_network_names_the_fix(tmp_path):
    dm = ShakespeareDataModule(str(tmp_path / "empty"), str(tmp_path / "cache"), url="http://127.0.0.1:9/input.txt")
    with pytest.raises(CorpusUnavailable, match=r"tinyshakespeare.txt is missing.*DATA_DIR"):
        dm.prepare_data()
    assert list((tmp_path / "empty").iterdir()) == []
