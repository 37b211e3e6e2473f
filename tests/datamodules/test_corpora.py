"""`make data` (datamodules/corpora.py): corpora already there are checked, not fetched; missing or wrong ones are
reported by name, and a failed download leaves nothing behind."""

from __future__ import annotations

import pytest

from datamodules import corpora


def test_present_corpora_are_checked_without_any_download(shakespeare_dir, multi30k_dir, gpt2_bpe, capsys):
    assert multi30k_dir.parent == shakespeare_dir and gpt2_bpe.parent == shakespeare_dir  # make data's layout
    assert corpora.main([str(shakespeare_dir)]) == 0  # a download would fail here: tests have no network
    out = capsys.readouterr().out
    assert out.count(": ok") == 3 and "FAILED" not in out


def test_missing_corpora_fail_by_name_and_leave_nothing(tmp_path, capsys):
    assert corpora.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.count("FAILED") == 3
    for name in (
        "tinyshakespeare.txt is missing",
        "train.de.gz is missing",
        "GPT-2 BPE (tiktoken): FAILED",
        "vocab.bpe) is missing",
        "tests never touch the network",
        f"from another machine into {tmp_path.resolve()}, then run `make data` again.",  # what to do offline
        "`make data` fetches them into <DATA_DIR>/tiktoken",
    ):
        assert name in out, name
    assert "../shared" not in out
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_wrong_files_are_reported(tmp_path):
    (tmp_path / "tinyshakespeare.txt").write_text("not Shakespeare\n")
    (tmp_path / "multi30k").mkdir()
    (tmp_path / "multi30k" / "train.de").write_text("Ein Mann.\n")
    (tmp_path / "tiktoken").mkdir()
    name = next(iter(corpora.GPT2_BPE))
    (tmp_path / "tiktoken" / name).write_text("{}")
    assert corpora.check_shakespeare(tmp_path) == [
        f"{tmp_path / 'tinyshakespeare.txt'} is not Tiny Shakespeare (16 bytes, expected 1115394; "
        f"md5 must be {corpora.MD5})"
    ]
    multi30k = corpora.check_multi30k(tmp_path)
    assert len(multi30k) == 6 and "train.de has md5" in multi30k[0] and "is missing" in multi30k[1]
    assert any(f"{name} (" in p and "wrong sha256" in p for p in corpora.check_gpt2_bpe(tmp_path))


def test_gpt2_bpe_is_fetched_into_the_folder_even_when_this_process_has_the_encoding(gpt2_bpe, tmp_path, monkeypatch):
    from datamodules.text_tokenizers import TiktokenTokenizer

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(gpt2_bpe))
    TiktokenTokenizer("gpt2")  # tiktoken now holds the encoding in memory: get_encoding would not look at a folder
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    with pytest.raises(RuntimeError, match="`make data` fetches them into <DATA_DIR>/tiktoken"):
        corpora.fetch_gpt2_bpe(tmp_path)  # so the files are fetched for this folder (and tests have no network)
