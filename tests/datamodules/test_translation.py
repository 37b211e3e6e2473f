"""Parallel corpora: bad input, the joint tokenizer (train split only, round trip), token-budget batches."""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.batching import TokenBudgetBatchSampler
from datamodules.files import CorpusUnavailable, md5sum
from datamodules.multi30k import MULTI30K_MD5, Multi30kDataModule
from datamodules.parallel_text import read_pairs
from datamodules.subword import BPETokenizer, GPT2PairTokenizer, build_pair_tokenizer
from datamodules.translation import (
    ParallelCorpusDataModule,
)
from tests.conftest import parallel_datamodule

DE = [
    "Ein Mann fährt Fahrrad.",
    "Zwei Hunde spielen im Schnee.",
    "Eine Frau liest ein Buch im Park.",
    "Kinder spielen Fußball auf der Straße.",
    "Ein Mann fährt ein rotes Auto.",
    "Eine Frau trinkt Kaffee.",
]
EN = [
    "A man rides a bike.",
    "Two dogs play in the snow.",
    "A woman reads a book in the park.",
    "Children play soccer on the street.",
    "A man drives a red car.",
    "A woman drinks coffee.",
]


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def corpus(root: Path, splits: dict[str, tuple[list[str], list[str]]], src="de", tgt="en") -> Path:
    for split, (a, b) in splits.items():
        write(root / f"{split}.{src}", a)
        write(root / f"{split}.{tgt}", b)
    return root


def module(root: Path, tmp_path: Path, **kw) -> ParallelCorpusDataModule:
    return parallel_datamodule(root, tmp_path / "cache", **{"vocab_size": 300, "max_tokens": 64, **kw})


# ----------------------------------------------------------------------------- bad input


def test_mismatched_line_counts_name_both_files(tmp_path):
    src, tgt = write(tmp_path / "train.de", DE), write(tmp_path / "train.en", EN[:-1])
    with pytest.raises(ValueError, match=r"train\.de has 6 lines but .*train\.en has 5"):
        read_pairs(src, tgt)


def test_empty_lines_are_an_error_naming_the_line(tmp_path):
    src = write(tmp_path / "train.de", DE)
    tgt = write(tmp_path / "train.en", EN[:3] + ["   "] + EN[4:])
    with pytest.raises(ValueError, match=r"1 empty line\(s\) .* first at line 4 of .*train\.en.*empty_lines=skip"):
        read_pairs(src, tgt)


def test_empty_lines_can_be_skipped_with_a_warning(tmp_path, caplog):
    src = write(tmp_path / "train.de", [""] + DE[1:])
    tgt = write(tmp_path / "train.en", EN[:3] + [""] + EN[4:])
    with caplog.at_level(logging.WARNING):
        a, b = read_pairs(src, tgt, empty_lines="skip")
    assert a == [DE[1], DE[2], DE[4], DE[5]] and b == [EN[1], EN[2], EN[4], EN[5]]
    assert "Dropped 2 pair(s)" in caplog.text


def test_a_non_utf8_file_is_a_clear_error(tmp_path):
    (tmp_path / "train.de").write_bytes("Straße\n".encode("latin-1"))
    write(tmp_path / "train.en", ["Street"])
    with pytest.raises(ValueError, match=r"train\.de is not UTF-8 text"):
        read_pairs(tmp_path / "train.de", tmp_path / "train.en")


def test_lines_split_on_newlines_only(tmp_path):
    # U+2028 / U+0085 inside a sentence must not split it (str.splitlines would).
    src = write(tmp_path / "a.de", ["Ein\u2028Satz", "Zwei\x85Sätze\r"])
    tgt = write(tmp_path / "a.en", ["One sentence", "Two"])
    assert read_pairs(src, tgt)[0] == ["Ein\u2028Satz", "Zwei\x85Sätze"]


def test_unknown_language_of_a_corpus_lists_the_languages_found(tmp_path):
    root = corpus(tmp_path / "c", {"train": (DE, EN), "val": (DE[:2], EN[:2])})
    dm = ParallelCorpusDataModule(data_dir=str(root), cache_dir=str(tmp_path), src_lang="fr", tgt_lang="en", test=None)
    with pytest.raises(FileNotFoundError, match=r"data\.src_lang='fr' has no train split here.*found .*: de, en"):
        dm.prepare_data()


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(src_lang="xx"), r"data\.src_lang='xx' is not a Multi30k language; choose two of de, en, fr, cs"),
        (dict(tgt_lang="ja"), r"data\.tgt_lang='ja' is not a Multi30k language"),
        (dict(src_lang="en", tgt_lang="en"), r"data\.src_lang and data\.tgt_lang are both 'en'"),
        (dict(max_tokens=64, max_len=128), r"data\.max_tokens=64 is smaller than data\.max_len=128"),
        (dict(tokenizer="sentencepiece"), r"data\.tokenizer='sentencepiece' is unknown"),
        (dict(empty_lines="ignore"), r"data\.empty_lines='ignore' is unknown"),
        (dict(limit=0), r"data\.limit must be a positive integer or null"),
        (dict(val=None, val_fraction=0.0), r"data\.val=null needs data\.val_fraction > 0"),
    ],
)
def test_bad_settings_fail_on_construction(kw, message):
    with pytest.raises(ValueError, match=message):
        Multi30kDataModule(data_dir="nowhere", **kw)


def test_over_long_sentences_are_truncated_with_a_warning(tmp_path, caplog):
    long_de, long_en = " ".join(["Hund"] * 60), " ".join(["dog"] * 60)
    root = corpus(tmp_path / "c", {"train": (DE + [long_de], EN + [long_en]), "val": (DE, EN)})
    with caplog.at_level(logging.WARNING):
        dm = module(root, tmp_path, test=None, max_len=32)
    assert "1 of 7 train pairs are longer than data.max_len=32 tokens" in caplog.text
    assert "val pairs" not in caplog.text
    batches = list(dm.train_dataloader())
    assert max(b["src"].size(1) for b in batches) == 32  # 31 tokens + EOS
    assert max(b["tgt_in"].size(1) for b in batches) == 32
    assert max(len(ids) for ids in dm.splits["train"].src_ids) == 31
    assert dm.splits["train"].tgt_text[-1] == long_en  # the text (the BLEU reference) stays whole


# ----------------------------------------------------------------------------- tokenizer


def test_tokenizer_is_learnt_on_the_training_split_only(tmp_path):
    unseen = "Zyxwvutsrqp"
    val_de = [f"{unseen} {unseen} {unseen}."] * 50
    root = corpus(tmp_path / "c", {"train": (DE * 5, EN * 5), "val": (val_de, ["x"] * 50)})  # val: 50 x unseen
    dm = module(root, tmp_path, test=None, vocab_size=420)
    vocab = dm.tokenizer.tok.get_vocab()
    assert not any("Zyx" in token or "vutsr" in token for token in vocab)
    assert "ĠMann" in vocab and "Ġwoman" in vocab  # training words do get merged
    assert len(dm.tokenizer.encode(unseen)) >= 6  # spelt out in small pieces
    # The cached tokenizer does not depend on the other splits.
    write(root / "val.de", ["Etwas ganz anderes."] * 50)
    write(root / "val.en", ["Something else."] * 50)
    again = module(root, tmp_path, test=None, vocab_size=420)
    assert again.tokenizer.state_dict() == dm.tokenizer.state_dict()
    assert len(list((tmp_path / "cache" / "translation").iterdir())) == 1


def test_bpe_round_trips_any_text_and_travels_as_json(tmp_path):
    tok = BPETokenizer.train(DE + EN, 300)
    texts = DE + EN + ["Ünïcödé — 日本語, emoji 😀, tabs\tand  double  spaces!", "x"]
    for text in texts:
        assert tok.decode(tok.encode(text)) == text
    state = tok.state_dict()
    assert state["kind"] == "hf_bpe" and isinstance(state["json"], str)
    rebuilt = build_pair_tokenizer(state)
    assert rebuilt.encode(texts[-2]) == tok.encode(texts[-2])
    assert (rebuilt.pad_id, rebuilt.bos_id, rebuilt.eos_id) == (0, 1, 2)
    assert tok.decode([tok.bos_id, *tok.encode("Ein Mann"), tok.eos_id, tok.pad_id]) == "Ein Mann"


def test_gpt2_tokenizer_option(tmp_path, gpt2_bpe):
    tok = GPT2PairTokenizer()
    assert (tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id) == (50258, 50257, 50256, 50256)
    assert tok.decode([tok.bos_id, *tok.encode("Ein Mann fährt."), tok.eos_id, tok.pad_id]) == "Ein Mann fährt."
    root = corpus(tmp_path / "c", {"train": (DE, EN), "val": (DE, EN)})
    dm = module(root, tmp_path, test=None, tokenizer="gpt2")
    assert dm.vocab_size == 50258
    assert build_pair_tokenizer(dm.tokenizer.state_dict()).encode("Hund") == tok.encode("Hund")


def test_unknown_tokenizer_state_is_rejected():
    with pytest.raises(ValueError, match="unknown translation tokenizer kind 'char'"):
        build_pair_tokenizer({"kind": "char", "chars": "ab"})


# ----------------------------------------------------------------------------- batching


def test_batches_respect_the_token_budget_and_cover_every_pair_once():
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(2, 60, 1000), rng.integers(2, 60, 1000)
    sampler = TokenBudgetBatchSampler(src, tgt, 512, shuffle=True, seed=3)
    epochs = [list(sampler), list(sampler)]
    for batches in epochs:
        assert sorted(i for b in batches for i in b) == list(range(1000))
        for b in batches:
            assert len(b) * max(max(src[b]), max(tgt[b])) <= 512
        assert len(batches) == len(sampler)
        padded = sum(len(b) * max(src[b].max(), tgt[b].max()) for b in batches)
        assert np.maximum(src, tgt).sum() / padded > 0.9  # length bucketing keeps padding small
    assert epochs[0] != epochs[1]  # reshuffled every epoch
    assert list(TokenBudgetBatchSampler(src, tgt, 512, shuffle=True, seed=3)) == epochs[0]  # seeded
    assert list(TokenBudgetBatchSampler(src, tgt, 512, shuffle=False)) == list(
        TokenBudgetBatchSampler(src, tgt, 512, shuffle=False)
    )


def test_a_pair_larger_than_the_budget_is_an_error():
    with pytest.raises(ValueError, match="data.max_tokens=10 cannot hold a pair of 12 tokens"):
        TokenBudgetBatchSampler(np.array([3, 12]), np.array([4, 5]), 10, shuffle=False)


def test_loader_batches_pad_to_the_longest_sentence_within_the_budget(tmp_path):
    root = corpus(tmp_path / "c", {"train": (DE * 4, EN * 4), "val": (DE, EN)})
    dm = module(root, tmp_path, test=None, max_tokens=48)
    tok = dm.tokenizer
    seen = []
    for batch in dm.train_dataloader():
        src, tgt_in, tgt_out = batch["src"], batch["tgt_in"], batch["tgt_out"]
        assert src.numel() <= 48 and tgt_in.numel() <= 48
        assert (tgt_in[:, 0] == tok.bos_id).all()
        for row, i in enumerate(batch["idx"].tolist()):
            ids = dm.splits["train"].tgt_ids[i]
            n = len(ids)
            assert tgt_in[row, 1 : n + 1].tolist() == ids and tgt_out[row, :n].tolist() == ids
            assert tgt_out[row, n] == tok.eos_id and (tgt_out[row, n + 1 :] == tok.pad_id).all()
            src_ids = dm.splits["train"].src_ids[i]
            assert src[row, : len(src_ids) + 1].tolist() == src_ids + [tok.eos_id]
            assert batch["tgt_text"][row] == dm.splits["train"].tgt_text[i]
        assert src.size(1) == max(len(dm.splits["train"].src_ids[i]) + 1 for i in batch["idx"].tolist())
        seen += batch["idx"].tolist()
    assert sorted(seen) == list(range(24))


def test_missing_splits_are_cut_off_train(tmp_path):
    de = [f"Satz Nummer {i}." for i in range(100)]
    en = [f"Sentence number {i}." for i in range(100)]
    root = corpus(tmp_path / "c", {"train": (de, en)})
    dm = module(root, tmp_path, val=None, test=None, val_fraction=0.1, test_fraction=0.05)
    sizes = {k: len(v) for k, v in dm.splits.items()}
    assert sizes == {"train": 85, "val": 10, "test": 5}
    texts = [set(v.src_text) for v in dm.splits.values()]
    assert set.union(*texts) == set(de) and sum(map(len, texts)) == 100  # disjoint, complete
    for split in dm.splits.values():  # pairs stay aligned
        assert all(s.split()[-1] == t.split()[-1] for s, t in zip(split.src_text, split.tgt_text))
    no_test = module(root, tmp_path, val=None, test=None, val_fraction=0.1)
    assert dm.has_test and not no_test.has_test  # train.py then skips trainer.test
    with pytest.raises(ValueError, match="this corpus has no test split"):
        no_test.test_dataloader()


# ----------------------------------------------------------------------------- Multi30k


def test_multi30k_both_directions(multi30k_dir, cache_dir):
    dm = Multi30kDataModule(data_dir=str(multi30k_dir), cache_dir=str(cache_dir), download=False)
    dm.setup("fit")
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 29000, "val": 1014, "test": 1000}
    assert dm.family == "seq2seq" and dm.vocab_size == 8000
    assert dm.splits["train"].src_text[2] == "Ein kleines Mädchen klettert in ein Spielhaus aus Holz."
    assert dm.splits["train"].tgt_text[2] == "A little girl climbing into a wooden playhouse."
    flipped = Multi30kDataModule(
        data_dir=str(multi30k_dir), cache_dir=str(cache_dir), src_lang="en", tgt_lang="de", limit=3
    )
    flipped.setup("fit")
    assert flipped.splits["test"].src_text[0].startswith("A man in an orange hat")
    assert flipped.splits["test"].tgt_text[0].startswith("Ein Mann mit einem orangefarbenen Hut")


def gzip_to(src: Path, dest: Path) -> None:
    with open(src, "rb") as f_in, gzip.open(dest, "wb") as f_out:
        shutil.copyfileobj(f_in, f_out)


def test_multi30k_downloads_missing_files_and_checks_them(multi30k_dir, tmp_path):
    remote = tmp_path / "remote"
    remote.mkdir()
    names = {"train": "train", "val": "val", "test2016": "test_2016_flickr"}
    for local, upstream in names.items():
        for lang in ("de", "en"):
            gzip_to(multi30k_dir / f"{local}.{lang}", remote / f"{upstream}.{lang}.gz")
    dest = tmp_path / "multi30k"
    dm = Multi30kDataModule(data_dir=str(dest), cache_dir=str(tmp_path / "cache"), base_url=remote.as_uri(), limit=5)
    dm.ensure_files()
    for name, md5 in MULTI30K_MD5.items():
        assert md5sum(dest / name) == md5
    assert not list(dest.glob("*.gz")) and not list(dest.glob(".*"))
    # A corrupted download is rejected and leaves nothing behind.
    (dest / "val.en").unlink()
    with gzip.open(remote / "val.en.gz", "wb") as f:
        f.write(b"not the real file\n")
    with pytest.raises(CorpusUnavailable, match="val.en .* has md5 .* expected"):
        dm.ensure_files()
    assert not (dest / "val.en").exists()
    offline = Multi30kDataModule(data_dir=str(dest), download=False)
    with pytest.raises(FileNotFoundError, match=r"val\.en does not exist"):
        offline.ensure_files()


def test_multi30k_download_failure_is_a_clear_error(tmp_path):
    dm = Multi30kDataModule(data_dir=str(tmp_path / "m"), base_url=(tmp_path / "nothing").as_uri())
    with pytest.raises(CorpusUnavailable, match=r"train\.de\.gz is missing and downloading it .* failed"):
        dm.prepare_data()


def test_collated_batches_hold_only_tensors_and_texts(tmp_path):
    root = corpus(tmp_path / "c", {"train": (DE, EN), "val": (DE, EN)})
    batch = next(iter(module(root, tmp_path, test=None).val_dataloader()))
    assert {k for k, v in batch.items() if isinstance(v, torch.Tensor)} == {"src", "tgt_in", "tgt_out", "idx"}
    assert all(isinstance(t, str) for t in batch["src_text"] + batch["tgt_text"])
