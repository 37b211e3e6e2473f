"""data=hf_text / hf_translation on datasets the tests build and save here (the code path of a Hub name, offline)."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # before `datasets` is imported: nothing may be downloaded
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

datasets = pytest.importorskip("datasets")

from datamodules.hf_datasets import HFTextDataModule, HFTranslationDataModule  # noqa: E402
from tests.datamodules.test_text import decode, module  # noqa: E402

TEXT = ["Ἐν ἀρχῇ ἦν ὁ λόγος,", "", "καὶ ὁ λόγος ἦν πρὸς τὸν θεόν.\n", "Во начале было Слово"]
EN = [f"the cat number {i}." for i in range(50)]
IT = [f"il gatto numero {i}." for i in range(50)]


def saved(path, **splits):
    datasets.DatasetDict({k: datasets.Dataset.from_dict(v) for k, v in splits.items()}).save_to_disk(str(path))
    return str(path)


def text_module(tmp_path, dataset: str, **kw) -> HFTextDataModule:
    return module(tmp_path, HFTextDataModule, dataset=dataset, **kw)


def test_a_saved_text_dataset_is_read_a_row_a_line(tmp_path):
    path = saved(tmp_path / "wiki", train={"text": TEXT * 20, "id": list(range(80))}, validation={"text": TEXT[:1] * 5})
    dm = text_module(tmp_path, path)
    assert (
        decode(dm, dm.train_tokens)
        == "Ἐν ἀρχῇ ἦν ὁ λόγος,\n\nκαὶ ὁ λόγος ἦν πρὸς τὸν θεόν.\nВо начале было Слово\n" * 20
    )
    assert decode(dm, dm.val_tokens) == "Ἐν ἀρχῇ ἦν ὁ λόγος,\n" * 5


def test_one_split_and_local_data_files(tmp_path):
    single = tmp_path / "single"
    datasets.Dataset.from_dict({"body": TEXT * 30}).save_to_disk(str(single))  # a Dataset: its train split
    dm = text_module(tmp_path, str(single), val_split=None, text_column="body", val_fraction=0.25)
    text = "".join(t if t.endswith("\n") else t + "\n" for t in TEXT * 30)
    assert decode(dm, dm.val_tokens) == text[int(len(text) * 0.75) :]
    folder = tmp_path / "jsonl"
    folder.mkdir()
    for split, rows in (("train", TEXT * 10), ("validation", TEXT[2:])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps({"text": r}) + "\n" for r in rows), encoding="utf-8")
    files = text_module(tmp_path, str(folder), hf_cache_dir=str(tmp_path / "hf"))  # load_dataset, as a Hub id is
    assert decode(files, files.val_tokens) == "καὶ ὁ λόγος ἦν πρὸς τὸν θεόν.\nВо начале было Слово\n"


def translation(tmp_path, dataset: str, **kw) -> HFTranslationDataModule:
    settings = dict(cache_dir=str(tmp_path / "cache"), vocab_size=300, max_len=32, max_tokens=64)
    dm = HFTranslationDataModule(dataset, **{**settings, **kw})
    dm.setup("fit")
    return dm


def test_opus_books_style_nested_translations(tmp_path):
    rows = [{"en": e, "it": i} for e, i in zip(EN, IT)]
    path = saved(tmp_path / "opus", train={"id": [str(i) for i in range(50)], "translation": rows})
    dm = translation(
        tmp_path,
        path,
        src_lang="en",
        tgt_lang="it",
        val_split=None,
        test_split=None,
        test_fraction=0.1,
        val_fraction=0.1,
    )
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 40, "val": 5, "test": 5}
    for split in dm.splits.values():
        assert all(s.split()[-1] == t.split()[-1] for s, t in zip(split.src_text, split.tgt_text))


def test_flat_columns_and_several_test_splits(tmp_path):
    def split(a, b):
        return {"en": EN[a:b], "de": [f"die Katze Nummer {i}." for i in range(a, b)]}

    path = saved(
        tmp_path / "m30k", train=split(0, 40), validation=split(40, 44), test=split(44, 47), test2=split(47, 50)
    )
    dm = translation(tmp_path, path, src_lang="en", tgt_lang="de", field=None, test_split=["test", "test2"])
    assert {name: len(v) for name, v in dm.sets["test"].items()} == {"test": 3, "test2": 3}
    assert dm.splits["val"].tgt_text[0] == "die Katze Nummer 40."


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(val_split="dev"), r"data.val_split='dev': .* has the splits \['train', 'validation'\]"),
        (dict(text_column="body"), r"data.text_column='body' is not a column of .*; its columns: \['text'\]"),
    ],
)
def test_text_errors_name_the_field(tmp_path, kw, message):
    path = saved(tmp_path / "d", train={"text": TEXT * 5}, validation={"text": TEXT})
    with pytest.raises(ValueError, match=message):
        text_module(tmp_path, path, **kw)


def test_translation_errors_name_the_field(tmp_path):
    path = saved(tmp_path / "d", train={"translation": [{"en": e, "it": i} for e, i in zip(EN, IT)]})
    with pytest.raises(ValueError, match=r"'fr' is not a key of the column 'translation' .*; its keys: \['en', 'it'\]"):
        translation(tmp_path, path, src_lang="en", tgt_lang="fr", val_split=None, test_split=None)
    with pytest.raises(ValueError, match=r"data.train_src does not apply to a Hugging Face dataset"):
        HFTranslationDataModule(path, train_src="a.txt")


def test_a_hub_dataset_offline_says_what_to_do(tmp_path):
    dm = HFTextDataModule(
        "Salesforce/wikitext", "wikitext-2-raw-v1", cache_dir=str(tmp_path), hf_cache_dir=str(tmp_path)
    )
    with pytest.raises(
        RuntimeError, match=r"data.dataset='Salesforce/wikitext' \(config 'wikitext-2-raw-v1'\) .*HF_DATASETS_OFFLINE"
    ):
        dm.prepare_data()
