"""Multi30k task 1 (Elliott et al. 2016): its file names, languages and a verified download."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Sequence
from pathlib import Path

from datamodules.files import CorpusUnavailable, atomic_write, fetch, md5sum
from datamodules.pair_splits import SPLITS
from datamodules.translation import ParallelCorpusDataModule
from errors import ConfigError

MULTI30K_COMMIT = "a3d2e0d26b56f3846f66a952536ffed4e401d05a"
MULTI30K_URL = f"https://raw.githubusercontent.com/multi30k/dataset/{MULTI30K_COMMIT}/data/task1/raw"
MULTI30K_LANGS = ("de", "en", "fr", "cs")
# Local prefix -> upstream file name. The later test sets (data.test=[test2016,test2017,test2017_mscoco]) are
# downloaded unchecked (no md5 here); test_2018_flickr has English references upstream only for some languages.
MULTI30K_REMOTE = {
    "train": "train",
    "val": "val",
    "test2016": "test_2016_flickr",
    "test2017": "test_2017_flickr",
    "test2017_mscoco": "test_2017_mscoco",
    "test2018": "test_2018_flickr",
}
# md5 of the gunzipped files (the copy in ../shared/data/multi30k/ here).
MULTI30K_MD5 = {
    "train.de": "d3b4bc1671cfb805267f97f16884beba",
    "train.en": "053a34ece7c904dbc8c7361799afbe4c",
    "val.de": "9f139b15d9d11936dea7af2904e57d8c",
    "val.en": "2234730e7925354b766681b029b347ec",
    "test2016.de": "cde61d7401b116652ee84099c7858ca3",
    "test2016.en": "2022a6c31e2418047a0511333d55ed42",
}


class Multi30kDataModule(ParallelCorpusDataModule):
    """Multi30k task 1 (Elliott et al. 2016): train 29,000 / val 1,014 / test2016 1,000 pairs.

    German->English by default; any two of de, en, fr, cs. Reads `<data_dir>/{train,val,test2016}.<lang>`
    and downloads missing files (gzipped, from the multi30k/dataset repository at a pinned commit); more test
    sets with data.test=[test2016,test2017,...] (see MULTI30K_REMOTE).
    """

    def __init__(self, data_dir: str = "data/multi30k", download: bool = True, base_url: str = MULTI30K_URL, **kw):
        for field in ("src_lang", "tgt_lang"):
            lang = kw.get(field, "de" if field == "src_lang" else "en")
            if lang not in MULTI30K_LANGS:
                raise ConfigError(
                    f"data.{field}={lang!r} is not a Multi30k language; choose two of {', '.join(MULTI30K_LANGS)} "
                    f"(e.g. data.src_lang=en data.tgt_lang=de)"
                )
        kw.setdefault("train", "train")
        kw.setdefault("val", "val")
        kw.setdefault("test", "test2016")
        super().__init__(data_dir=data_dir, **kw)
        self.download, self.base_url = download, base_url

    def ensure_files(self, splits: Sequence[str] = SPLITS) -> None:
        for split in splits:
            if not self.uses_layout(split):
                continue
            for prefix in self.prefixes[split]:
                for lang in (self.src_lang, self.tgt_lang):
                    dest = self.path(split, lang, prefix)
                    if dest.is_file():
                        continue
                    if not self.download or prefix not in MULTI30K_REMOTE:
                        self._missing(split, lang, prefix)
                    self._download(MULTI30K_REMOTE[prefix], lang, dest)

    def _download(self, remote: str, lang: str, dest: Path) -> None:
        hint = f"Put the Multi30k files into {self.data_dir.resolve()} or point data.data_dir (DATA_DIR) at them."
        gz = fetch(f"{self.base_url}/{remote}.{lang}.gz", dest.with_name(dest.name + ".gz"), hint=hint)
        expected = MULTI30K_MD5.get(dest.name)

        def unpack(tmp: Path) -> None:
            with gzip.open(gz, "rb") as f_in, open(tmp, "wb") as f_out:
                shutil.copyfileobj(f_in, f_out)
            if expected and (got := md5sum(tmp)) != expected:
                raise CorpusUnavailable(f"{dest.name} from {self.base_url} has md5 {got}, expected {expected}. {hint}")

        try:
            atomic_write(dest, unpack)
        except OSError as err:
            raise CorpusUnavailable(f"could not unpack {gz} into {dest} ({err}). {hint}") from err
        finally:
            gz.unlink(missing_ok=True)
