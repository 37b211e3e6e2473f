"""Hugging Face datasets as corpora: `data=hf_text` (a text column, for a GPT) and `data=hf_translation` (pairs).

`data.dataset` is a Hub id (Salesforce/wikitext, opus_books, bentrevett/multi30k) or a local path: a folder
written by `save_to_disk` (read with `load_from_disk`) or a folder / files that `load_dataset` reads (csv, json,
parquet, text). Hub datasets download into the Hugging Face cache on first use; offline
(HF_DATASETS_OFFLINE=1, HF_HUB_OFFLINE=1) they must be there already.
Text rows are joined one a line (a newline is added to a row that lacks one) and tokenized into the same
streamed caches as text files; translation rows are `{"translation": {"en": ..., "it": ...}}` (opus_books,
wmt: `data.field=translation`) or flat columns named by the languages (bentrevett/multi30k: `data.field=null`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from datamodules.pair_splits import Names, as_list
from datamodules.parallel_text import Pairs, drop_empty
from datamodules.text import TextDataModule
from datamodules.translation import ParallelCorpusDataModule
from errors import ConfigError

ROWS_PER_BATCH = 1000


class HubDataset:
    """A dataset by Hub id or local path, loaded once, on first use."""

    def __init__(self, dataset: str, config: str | None = None, *, data_files=None, revision=None, cache_dir=None):
        if not dataset:
            raise ConfigError("data.dataset is not set: give a Hub id (e.g. Salesforce/wikitext) or a local path")
        self.dataset, self.config = str(dataset), config
        self.data_files, self.revision, self.cache_dir = data_files, revision, cache_dir
        self._splits: dict | None = None

    def load(self) -> dict:
        if self._splits is None:
            import datasets

            path = Path(self.dataset).expanduser()
            saved = path.is_dir() and any((path / f).is_file() for f in ("dataset_dict.json", "state.json"))
            try:
                if saved:
                    loaded = datasets.load_from_disk(str(path))
                else:
                    loaded = datasets.load_dataset(
                        self.dataset,
                        self.config,
                        data_files=self.data_files,
                        revision=self.revision,
                        cache_dir=self.cache_dir,
                    )
            except Exception as err:
                config = f" (config {self.config!r})" if self.config else ""
                raise RuntimeError(
                    f"data.dataset={self.dataset!r}{config} could not be loaded "
                    f"({type(err).__name__}: {err}). Offline (HF_DATASETS_OFFLINE=1) a Hub dataset must already be in "
                    f"the Hugging Face cache; or give a folder written by save_to_disk, or local data files"
                ) from err
            self._splits = {"train": loaded} if isinstance(loaded, datasets.Dataset) else dict(loaded)
        return self._splits

    def split(self, name: str, field: str):
        splits = self.load()
        if name not in splits:
            hint = f"set data.{field} to one of them, or null to cut that split off the training split"
            raise ConfigError(f"data.{field}={name!r}: {self.dataset} has the splits {sorted(splits)}; {hint}")
        return splits[name]

    def identity(self, name: str, field: str) -> list:
        ds = self.split(name, field)
        files = [[f["filename"], (st := Path(f["filename"]).stat()).st_size, st.st_mtime_ns] for f in ds.cache_files]
        return [self.dataset, self.config, name, files or getattr(ds, "_fingerprint", len(ds))]

    def columns(self, name: str, field: str, wanted: list[str], key: str):
        """The split with only the wanted columns; a missing one raises naming data.<key> and the columns."""
        ds = self.split(name, field)
        for column in wanted:
            if column not in ds.column_names:
                raise ConfigError(
                    f"data.{key}={column!r} is not a column of {self.dataset} split {name!r}; its columns: "
                    f"{ds.column_names}"
                )
        return ds.select_columns(wanted)


class HFTextSource:
    """The text column of one split, a row a line."""

    def __init__(self, hub: HubDataset, split: str, column: str, field: str):
        self.hub, self.split, self.column, self.field = hub, split, column, field
        self.label = f"{hub.dataset} split {split!r} column {column!r}"

    def identity(self) -> list:
        return [*self.hub.identity(self.split, self.field), self.column]

    def chunks(self) -> Iterator[str]:
        ds = self.hub.columns(self.split, self.field, [self.column], "text_column")
        for batch in ds.iter(batch_size=ROWS_PER_BATCH):
            rows = [row or "" for row in batch[self.column]]
            if any(not isinstance(row, str) for row in rows):
                raise ConfigError(f"data.text_column={self.column!r} of {self.label} does not hold text")
            yield "".join(row if row.endswith("\n") else row + "\n" for row in rows)


def _reject(settings: dict, keys: tuple[str, ...], instead: str) -> None:
    given = [k for k in keys if settings.pop(k, None) not in (None, [])]
    if given:
        raise ConfigError(f"data.{given[0]} does not apply to a Hugging Face dataset: {instead}")


class HFTextDataModule(TextDataModule):
    """A GPT corpus from a dataset's text column: train_split for training, val_split (or, when null, the last
    val_fraction of the training text) for validation."""

    def __init__(
        self,
        dataset: str,
        config: str | None = None,
        train_split: str = "train",
        val_split: str | None = "validation",
        text_column: str = "text",
        data_files=None,
        revision: str | None = None,
        hf_cache_dir: str | None = None,
        **kw,
    ):
        _reject(kw, ("path", "train", "val"), "name its splits with data.train_split / data.val_split")
        super().__init__(**kw)
        self.hub = HubDataset(dataset, config, data_files=data_files, revision=revision, cache_dir=hf_cache_dir)
        self.train_split, self.val_split, self.text_column = train_split, val_split, text_column

    def training_source(self) -> HFTextSource:
        return HFTextSource(self.hub, self.train_split, self.text_column, "train_split")

    def validation_source(self) -> HFTextSource | None:
        if self.val_split is None:
            return None
        return HFTextSource(self.hub, self.val_split, self.text_column, "val_split")


@dataclass
class HFPairs:
    """The sentence pairs of one split: row[field][lang] (nested, opus_books) or row[lang] (flat columns)."""

    hub: HubDataset
    name: str
    role: str  # data.<role> names the split in errors
    field: str | None
    src_lang: str
    tgt_lang: str

    def read(self, empty_lines: str) -> Pairs:
        langs = [self.src_lang, self.tgt_lang]
        if self.field is None:
            ds = self.hub.columns(self.name, self.role, langs, "src_lang / data.tgt_lang")
            src, tgt = ds[self.src_lang], ds[self.tgt_lang]
        else:
            rows = self.hub.columns(self.name, self.role, [self.field], "field")[self.field]
            for lang in langs:
                if rows and lang not in rows[0]:
                    raise ConfigError(
                        f"data.src_lang / data.tgt_lang: {lang!r} is not a key of the column {self.field!r} of "
                        f"{self.hub.dataset} split {self.name!r}; its keys: {sorted(rows[0])}"
                    )
            src, tgt = [r[self.src_lang] for r in rows], [r[self.tgt_lang] for r in rows]
        if not src:
            raise ConfigError(f"{self.hub.dataset} split {self.name!r} is empty")
        where = tuple(f"{self.hub.dataset} split {self.name!r} ({lang})" for lang in langs)
        return drop_empty([(s or "").strip() for s in src], [(t or "").strip() for t in tgt], where, empty_lines)


class HFTranslationDataModule(ParallelCorpusDataModule):
    """A parallel corpus from a dataset: src_lang / tgt_lang are the language keys (or column names). A null
    val_split / test_split is cut off the training pairs (val_fraction / test_fraction); test_split may be a
    list (several test sets)."""

    def __init__(
        self,
        dataset: str,
        config: str | None = None,
        train_split: str = "train",
        val_split: Names = "validation",
        test_split: Names = "test",
        field: str | None = "translation",
        data_files=None,
        revision: str | None = None,
        hf_cache_dir: str | None = None,
        **kw,
    ):
        files = ("data_dir", "train_src", "train_tgt", "val_src", "val_tgt", "test_src", "test_tgt", "tsv")
        _reject(kw, (*files, "val_tsv", "test_tsv"), "name its splits with data.train_split / val_split / test_split")
        for key in ("train", "val", "test"):
            kw.pop(key, None)  # the <prefix>.<lang> layout's prefixes
        self.hub = HubDataset(dataset, config, data_files=data_files, revision=revision, cache_dir=hf_cache_dir)
        self.hf_splits = {"train": as_list(train_split), "val": as_list(val_split), "test": as_list(test_split)}
        self.field = field
        super().__init__(**kw)
        if self.src_lang is None or self.tgt_lang is None:
            raise ConfigError("data.src_lang and data.tgt_lang are the dataset's language keys: set both")

    def has_pairs(self, split: str) -> bool:
        return bool(self.hf_splits[split])

    def uses_layout(self, split: str) -> bool:
        return False

    def split_sources(self, split: str) -> list[HFPairs]:
        langs = (self.src_lang, self.tgt_lang)
        return [HFPairs(self.hub, name, f"{split}_split", self.field, *langs) for name in self.hf_splits[split]]
