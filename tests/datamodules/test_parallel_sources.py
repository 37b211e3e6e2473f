"""Parallel corpora from explicit files, TSVs and several test sets; their errors; Multi30k's extra test sets."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from datamodules.multi30k import Multi30kDataModule
from datamodules.parallel_text import read_tsv
from datamodules.translation import ParallelCorpusDataModule

EN = [f"the cat number {i}." for i in range(40)]
FR = [f"le chat numéro {i}." for i in range(40)]


def write(path, lines: list[str]):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def module(tmp_path, stage: str | None = "fit", **kw) -> ParallelCorpusDataModule:
    settings = dict(cache_dir=str(tmp_path / "cache"), vocab_size=300, max_len=32, max_tokens=64, src_lang=None)
    dm = ParallelCorpusDataModule(**{**settings, "tgt_lang": None, **kw})
    dm.setup(stage)
    return dm


def test_explicit_files_of_any_name(tmp_path):
    dm = module(
        tmp_path,
        train_src=write(tmp_path / "english.txt", EN),
        train_tgt=write(tmp_path / "french.txt", FR),
        val_fraction=0.1,
    )
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 36, "val": 4}
    for split in dm.splits.values():  # pairs stay aligned
        assert all(s.split()[-1] == t.split()[-1] for s, t in zip(split.src_text, split.tgt_text))


def test_a_tsv_corpus(tmp_path):
    tsv = write(tmp_path / "pairs.tsv", [f"{s}\t{t}" for s, t in zip(EN, FR)])
    test = write(tmp_path / "held.tsv", ["the dog.\tle chien.", "a cat.\tun chat."])
    dm = module(tmp_path, tsv=tsv, test_tsv=test, val_fraction=0.25)
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 30, "val": 10, "test": 2}
    assert dm.splits["test"].src_text == ["the dog.", "a cat."] and dm.splits["test"].tgt_text == [
        "le chien.",
        "un chat.",
    ]
    assert dm.sets["test"].keys() == {"held"}


@pytest.mark.parametrize(
    "lines, message",
    [
        (["a\tb", "no tab here"], r"pairs.tsv line 2 has no tab: every line must be source<TAB>target"),
        (["a\tb\tc"], r"pairs.tsv line 1 has 3 tab-separated columns"),
        ([], r"pairs.tsv is empty"),
        (["a\tb", "\tc"], r"1 empty line\(s\) .* first at line 2 of .*pairs.tsv \(source column\)"),
    ],
)
def test_bad_tsv_lines_name_the_line(tmp_path, lines, message):
    with pytest.raises(ValueError, match=message):
        read_tsv(Path(write(tmp_path / "pairs.tsv", lines)))


def test_several_test_sets_from_files_and_prefixes(tmp_path):
    root = tmp_path / "corpus"
    for prefix, n in (("train", 40), ("dev", 5), ("news2019", 3), ("news2020", 4)):
        write(root / f"{prefix}.en", EN[:n])
        write(root / f"{prefix}.fr", FR[:n])
    layout = dict(data_dir=str(root), src_lang="en", tgt_lang="fr", val="dev")
    dm = module(tmp_path, test=["news2019", "news2020"], **layout)
    assert {name: len(v) for name, v in dm.sets["test"].items()} == {"news2019": 3, "news2020": 4}
    assert len(dm.splits["test"]) == 3  # train.py's trainer.test scores the first
    src = [write(tmp_path / "x" / "wmt.en", EN[:2]), write(tmp_path / "y" / "wmt.en", EN[:6])]
    tgt = [write(tmp_path / "x" / "wmt.fr", FR[:2]), write(tmp_path / "y" / "wmt.fr", FR[:6])]
    files = module(tmp_path, test_src=src, test_tgt=tgt, **layout)
    assert {name: len(v) for name, v in files.sets["test"].items()} == {"wmt": 2, "wmt_2": 6}  # replaces the prefixes


def test_a_checkpoint_tokenizer_reads_only_the_test_sets(tmp_path):
    train_src, train_tgt = write(tmp_path / "train.en", EN), write(tmp_path / "train.fr", FR)
    trained = module(tmp_path, train_src=train_src, train_tgt=train_tgt)
    (tmp_path / "train.en").unlink()  # eval.py never needs the training pairs for a test set of its own
    settings = dict(train_src=train_src, train_tgt=train_tgt, test_src=write(tmp_path / "t.en", EN[:3]))
    dm = ParallelCorpusDataModule(**settings, test_tgt=write(tmp_path / "t.fr", FR[:3]), max_len=32, max_tokens=64)
    dm.use_tokenizer(trained.tokenizer)
    dm.setup("test")
    assert list(dm.sets) == ["test"] and dm.splits["test"].src_ids[0] == trained.tokenizer.encode(EN[0])


@pytest.mark.parametrize(
    "kw, error, message",
    [
        (dict(train_src="nope.en", train_tgt="nope.fr"), FileNotFoundError, r"data.train_src=nope.en: no such file"),
        (dict(train_src="EN", train_tgt="EMPTY"), ValueError, r"empty.fr is empty"),
        (dict(train_src="EN", train_tgt="SHORT"), ValueError, r"en.txt has 40 lines but .*short.fr has 39"),
        (dict(train_src="EN"), ValueError, r"data.train_src names 1 file\(s\) but data.train_tgt 0"),
        (dict(), ValueError, r"no training pairs: give data.train_src= and data.train_tgt="),
        (dict(data_dir="DIR"), ValueError, r"data.src_lang and data.tgt_lang name the files"),
    ],
)
def test_bad_parallel_input_is_one_clear_line(tmp_path, monkeypatch, kw, error, message):
    paths = {
        "EN": write(tmp_path / "en.txt", EN),
        "EMPTY": write(tmp_path / "empty.fr", []),
        "SHORT": write(tmp_path / "short.fr", FR[:-1]),
        "DIR": str(tmp_path),
    }
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message) as err:
        module(tmp_path, **{k: paths.get(v, v) for k, v in kw.items()})
    assert "\n" not in str(err.value)


def test_multi30k_downloads_the_later_test_sets(tmp_path):
    remote, dest = tmp_path / "remote", tmp_path / "multi30k"
    remote.mkdir()
    de, en = [f"Satz {i}." for i in range(30)], [f"Sentence {i}." for i in range(30)]
    for prefix, n in (("train", 30), ("val", 3), ("test2016", 3)):  # here already (the real ones are md5-checked)
        write(dest / f"{prefix}.de", de[:n])
        write(dest / f"{prefix}.en", en[:n])
    for lang, lines in (("de", de[:2]), ("en", en[:2])):  # upstream's name for test2017
        with gzip.open(remote / f"test_2017_flickr.{lang}.gz", "wt", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
    settings = dict(cache_dir=str(tmp_path / "cache"), base_url=remote.as_uri(), vocab_size=300, max_tokens=128)
    dm = Multi30kDataModule(data_dir=str(dest), test=["test2016", "test2017"], **settings)
    dm.setup("fit")
    assert {name: len(v) for name, v in dm.sets["test"].items()} == {"test2016": 3, "test2017": 2}
    assert (dest / "test2017.de").read_text() == "Satz 0.\nSatz 1.\n"
