"""Parallel corpora for translation: reading and checking, a joint tokenizer, token-budget batches.

A corpus is one file per side per split, `<data_dir>/<split>.<lang>`, one sentence a line, line i of
the source translating line i of the target. Without a validation (or test) file, that split is cut
off the training pairs by a seeded random fraction. `Multi30kDataModule` adds Multi30k's file
names, languages and download.

Documented behaviour on bad input:
- source and target files of different line counts: ValueError naming both files and counts;
- empty lines: ValueError naming the file and line (data.empty_lines=error, the default), or the
  pairs are dropped with a warning (data.empty_lines=skip);
- sentences over data.max_len tokens (EOS included): truncated, with one warning per split;
- an unknown language: ValueError listing the languages found (or, for Multi30k, the known ones).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from datamodules.download import CorpusUnavailable, fetch, md5sum
from datamodules.subword import BPETokenizer, GPT2PairTokenizer, PairTokenizer, build_pair_tokenizer
from datamodules.text_tokenizers import default_tiktoken_cache

log = logging.getLogger(__name__)

TOKENIZERS = ("bpe", "gpt2")
EMPTY_LINES = ("error", "skip")


# ----------------------------------------------------------------------------- reading


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file, whitespace-stripped. Splits on "\\n" only (not on Unicode separators)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err}); convert it, e.g. with iconv -t utf-8") from err
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def read_pairs(src_path: Path, tgt_path: Path, *, empty_lines: str = "error") -> tuple[list[str], list[str]]:
    """The sentence pairs of one split, checked: equal line counts, no empty lines (or skipped)."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise ValueError(
            f"parallel files differ in length: {src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}. "
            f"Line i of one must translate line i of the other: fix the corpus (one sentence a line on both sides)"
        )
    empty = [i for i, (s, t) in enumerate(zip(src, tgt)) if not s or not t]
    if empty:
        first = empty[0]
        where = src_path if not src[first] else tgt_path
        if empty_lines == "error":
            raise ValueError(
                f"{len(empty)} empty line(s) in the pair {src_path} / {tgt_path}, the first at line {first + 1} "
                f"of {where}. Remove them, or drop those pairs with data.empty_lines=skip"
            )
        log.warning("Dropped %d pair(s) with an empty side from %s / %s", len(empty), src_path, tgt_path)
        drop = set(empty)
        src = [s for i, s in enumerate(src) if i not in drop]
        tgt = [t for i, t in enumerate(tgt) if i not in drop]
    return src, tgt


# ----------------------------------------------------------------------------- batching


@dataclass
class Encoded:
    """One split, tokenized: ids without specials, plus the original text (references for BLEU)."""

    src_ids: list[list[int]]
    tgt_ids: list[list[int]]
    src_text: list[str]
    tgt_text: list[str]

    def __len__(self) -> int:
        return len(self.src_text)


def encode_split(tokenizer: PairTokenizer, src: list[str], tgt: list[str], max_len: int, *, split: str) -> Encoded:
    """Tokenize both sides; cut sentences to max_len - 1 tokens (one position is left for EOS/BOS)."""
    src_ids, tgt_ids = tokenizer.encode_batch(src), tokenizer.encode_batch(tgt)
    long = sum(len(s) >= max_len or len(t) >= max_len for s, t in zip(src_ids, tgt_ids))
    if long:
        log.warning(
            "%d of %d %s pairs are longer than data.max_len=%d tokens (EOS included) and were truncated",
            long,
            len(src),
            split,
            max_len,
        )
    cut = max_len - 1
    return Encoded([s[:cut] for s in src_ids], [t[:cut] for t in tgt_ids], src, tgt)


class PairDataset(Dataset):
    """Item i: (source ids + EOS, target ids, i)."""

    def __init__(self, data: Encoded, eos_id: int):
        self.data, self.eos_id = data, eos_id

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[list[int], list[int], int]:
        return self.data.src_ids[i] + [self.eos_id], self.data.tgt_ids[i], i

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """Padded-tensor lengths per pair: source (with EOS) and target (BOS/EOS + tokens)."""
        src = np.fromiter((len(s) + 1 for s in self.data.src_ids), dtype=np.int64, count=len(self))
        tgt = np.fromiter((len(t) + 1 for t in self.data.tgt_ids), dtype=np.int64, count=len(self))
        return src, tgt


class PadCollate:
    """Pad a list of pairs to the batch's longest source and target.

    Returns src (B, S), tgt_in = BOS + target (B, T), tgt_out = target + EOS (B, T), idx (B,), and the
    texts of the pairs (src_text, tgt_text) for BLEU and examples.
    """

    def __init__(self, data: Encoded, pad_id: int, bos_id: int, eos_id: int):
        self.data, self.pad_id, self.bos_id, self.eos_id = data, pad_id, bos_id, eos_id

    def __call__(self, items: list[tuple[list[int], list[int], int]]) -> dict:
        b = len(items)
        s = max(len(src) for src, _, _ in items)
        t = max(len(tgt) for _, tgt, _ in items) + 1
        src = torch.full((b, s), self.pad_id, dtype=torch.long)
        tgt_in = torch.full((b, t), self.pad_id, dtype=torch.long)
        tgt_out = torch.full((b, t), self.pad_id, dtype=torch.long)
        for row, (x, y, _) in enumerate(items):
            src[row, : len(x)] = torch.tensor(x)
            tgt_in[row, : len(y) + 1] = torch.tensor([self.bos_id, *y])
            tgt_out[row, : len(y) + 1] = torch.tensor([*y, self.eos_id])
        idx = [i for _, _, i in items]
        return {
            "src": src,
            "tgt_in": tgt_in,
            "tgt_out": tgt_out,
            "idx": torch.tensor(idx),
            "src_text": [self.data.src_text[i] for i in idx],
            "tgt_text": [self.data.tgt_text[i] for i in idx],
        }


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Length-bucketed batches: pairs sorted by length are packed while
    batch size x longest side (source or target) <= max_tokens, so padding stays small.

    shuffle=True shuffles ties within a length and the order of the batches, differently every epoch
    (seeded). Under DDP each rank takes every world-th batch (the list is padded to a multiple of
    the world size); use it with Trainer(use_distributed_sampler=False).
    """

    def __init__(self, src_lens: np.ndarray, tgt_lens: np.ndarray, max_tokens: int, *, shuffle: bool, seed: int = 0):
        self.sizes = np.maximum(np.asarray(src_lens), np.asarray(tgt_lens))
        if len(self.sizes) == 0:
            raise ValueError("no sentence pairs to batch")
        if int(self.sizes.max()) > max_tokens:
            raise ValueError(
                f"data.max_tokens={max_tokens} cannot hold a pair of {int(self.sizes.max())} tokens: "
                f"raise data.max_tokens to at least data.max_len"
            )
        self.max_tokens, self.shuffle, self.seed, self.epoch = max_tokens, shuffle, seed, 0
        self._len = len(self._batches(0))

    def _batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        if self.shuffle:
            perm = rng.permutation(len(self.sizes))
            order = perm[np.argsort(self.sizes[perm], kind="stable")]
        else:
            order = np.argsort(self.sizes, kind="stable")
        batches, current, longest = [], [], 0
        for i in order.tolist():
            size = int(self.sizes[i])
            if current and (len(current) + 1) * max(longest, size) > self.max_tokens:
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, size)
        batches.append(current)
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        rank, world = _rank_and_world()
        if world > 1:
            batches += batches[: (-len(batches)) % world]
            batches = batches[rank::world]
        return batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        batches = self._batches(self.epoch)
        self.epoch += 1
        yield from batches

    def __len__(self) -> int:
        rank, world = _rank_and_world()
        return -(-self._len // world)


# ----------------------------------------------------------------------------- data modules


class ParallelCorpusDataModule(L.LightningDataModule):
    """Any parallel corpus in `data_dir`: files `<train>.<src_lang>`, `<train>.<tgt_lang>`, and so on.

    val / test: file prefixes, or null to cut val_fraction / test_fraction of the training pairs off
    (seeded). tokenizer: "bpe" (joint byte-level BPE of vocab_size tokens learnt on the training pairs
    only, cached in cache_dir) or "gpt2" (tiktoken). limit: keep only the first `limit` pairs of
    every split (quick runs and tests).
    """

    family = "seq2seq"

    def __init__(
        self,
        data_dir: str = "data",
        cache_dir: str = ".cache",
        src_lang: str = "de",
        tgt_lang: str = "en",
        train: str = "train",
        val: str | None = "val",
        test: str | None = "test",
        val_fraction: float = 0.05,
        test_fraction: float = 0.0,
        tokenizer: str = "bpe",
        vocab_size: int = 8000,
        min_frequency: int = 2,
        max_len: int = 128,
        max_tokens: int = 4096,
        val_max_tokens: int | None = None,
        limit: int | None = None,
        empty_lines: str = "error",
        num_workers: int = 0,
        seed: int = 1337,
    ):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("max_len", max_len), ("max_tokens", max_tokens)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"data.{name} must be a positive integer, got {value!r}")
        if max_len < 2:
            raise ValueError(f"data.max_len must be at least 2 (one token and EOS), got {max_len}")
        if max_tokens < max_len:
            raise ValueError(
                f"data.max_tokens={max_tokens} is smaller than data.max_len={max_len}: a batch must hold "
                f"at least one sentence of the longest length; raise data.max_tokens"
            )
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            raise ValueError(f"data.limit must be a positive integer or null, got {limit!r}")
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"data.tokenizer={tokenizer!r} is unknown; choose one of {TOKENIZERS}")
        if empty_lines not in EMPTY_LINES:
            raise ValueError(f"data.empty_lines={empty_lines!r} is unknown; choose one of {EMPTY_LINES}")
        for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= frac < 1.0:
                raise ValueError(f"data.{name} must be in [0, 1), got {frac}")
        if val is None and val_fraction <= 0.0:
            raise ValueError("data.val=null needs data.val_fraction > 0 to cut a validation split off train")
        if src_lang == tgt_lang:
            raise ValueError(f"data.src_lang and data.tgt_lang are both {src_lang!r}: pick two languages")
        self.data_dir, self.cache_root = Path(data_dir).expanduser(), Path(cache_dir).expanduser()
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.prefixes = {"train": train, "val": val, "test": test}
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.tokenizer_name, self.bpe_vocab_size, self.min_frequency = tokenizer, vocab_size, min_frequency
        self.max_len, self.max_tokens = max_len, max_tokens
        self.val_max_tokens = val_max_tokens or max_tokens
        self.limit, self.empty_lines, self.num_workers, self.seed = limit, empty_lines, num_workers, seed
        self.tokenizer: PairTokenizer | None = None
        self.splits: dict[str, Encoded] = {}

    # -- files
    def path(self, split: str, lang: str) -> Path:
        return self.data_dir / f"{self.prefixes[split]}.{lang}"

    def ensure_files(self) -> None:
        """Check every needed file exists (subclasses download here)."""
        for split, prefix in self.prefixes.items():
            if prefix is None:
                continue
            for lang in (self.src_lang, self.tgt_lang):
                if not self.path(split, lang).is_file():
                    self._missing(split, lang)

    def _missing(self, split: str, lang: str) -> None:
        found = sorted({p.suffix[1:] for p in self.data_dir.glob(f"{self.prefixes[split]}.*")})
        field = "data.src_lang" if lang == self.src_lang else "data.tgt_lang"
        raise FileNotFoundError(
            f"{self.path(split, lang)} does not exist, so {field}={lang!r} has no {split} split here. "
            f"Languages found for {self.data_dir / self.prefixes[split]}.*: {', '.join(found) or 'none'} "
            f"(set data.data_dir, data.{split} or the language pair)"
        )

    def read_splits(self) -> dict[str, tuple[list[str], list[str]]]:
        """The checked text pairs of every split (cut off train where a split has no files)."""
        out = {}
        for split, prefix in self.prefixes.items():
            if prefix is not None:
                src_path, tgt_path = self.path(split, self.src_lang), self.path(split, self.tgt_lang)
                out[split] = read_pairs(src_path, tgt_path, empty_lines=self.empty_lines)
        src, tgt = out["train"]
        rng = np.random.default_rng(self.seed)
        perm = rng.permutation(len(src)).tolist()
        for split, frac in (("val", self.val_fraction), ("test", self.test_fraction)):
            if self.prefixes[split] is None and frac > 0:
                n = max(1, int(round(len(src) * frac)))
                take, perm = sorted(perm[:n]), perm[n:]
                out[split] = ([src[i] for i in take], [tgt[i] for i in take])
        if len(perm) < len(src):
            keep = sorted(perm)
            out["train"] = ([src[i] for i in keep], [tgt[i] for i in keep])
        if self.limit is not None:
            out = {k: (s[: self.limit], t[: self.limit]) for k, (s, t) in out.items()}
        if not out["train"][0]:
            raise ValueError(f"no training pairs left in {self.path('train', self.src_lang)}")
        return out

    # -- tokenizer
    def _tokenizer_path(self, train: tuple[list[str], list[str]]) -> Path:
        h = hashlib.md5()
        for side in train:
            for line in side:
                h.update(line.encode("utf-8") + b"\n")
        key = f"{h.hexdigest()[:12]}-bpe{self.bpe_vocab_size}-min{self.min_frequency}"
        return self.cache_root / "translation" / key / "tokenizer.json"

    def _load_or_train_tokenizer(self, train: tuple[list[str], list[str]]) -> PairTokenizer:
        if self.tokenizer_name == "gpt2":
            default_tiktoken_cache(self.data_dir.parent)
            default_tiktoken_cache(self.data_dir)
            return GPT2PairTokenizer("gpt2")
        path = self._tokenizer_path(train)
        if path.is_file():
            return build_pair_tokenizer(json.loads(path.read_text(encoding="utf-8")))
        log.info("Training a %d-token joint BPE on %d training pairs", self.bpe_vocab_size, len(train[0]))
        tok = BPETokenizer.train(train[0] + train[1], self.bpe_vocab_size, min_frequency=self.min_frequency)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(tok.state_dict()), encoding="utf-8")
        os.replace(tmp, path)
        return tok

    # -- Lightning hooks
    def prepare_data(self) -> None:
        """Find (or download) the files and learn the tokenizer once, into the cache."""
        self.ensure_files()
        self._load_or_train_tokenizer(self.read_splits()["train"])

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is not None:
            return
        self.ensure_files()
        texts = self.read_splits()
        self.tokenizer = self._load_or_train_tokenizer(texts["train"])
        self.splits = {
            split: encode_split(self.tokenizer, src, tgt, self.max_len, split=split)
            for split, (src, tgt) in texts.items()
        }
        log.info(
            "%s->%s pairs: %s; vocabulary %d",
            self.src_lang,
            self.tgt_lang,
            ", ".join(f"{k} {len(v)}" for k, v in self.splits.items()),
            self.tokenizer.vocab_size,
        )

    @property
    def vocab_size(self) -> int:
        assert self.tokenizer is not None, "call prepare_data() and setup() first"
        return self.tokenizer.vocab_size

    @property
    def has_test(self) -> bool:
        """Whether trainer.test has a split to score (data.test=null with no test_fraction: none)."""
        return "test" in self.splits

    def _loader(self, split: str, *, shuffle: bool, max_tokens: int) -> DataLoader:
        if split not in self.splits:
            raise ValueError(
                f"this corpus has no {split} split: give data.{split} (a file prefix) or data.{split}_fraction > 0"
            )
        data, tok = self.splits[split], self.tokenizer
        dataset = PairDataset(data, tok.eos_id)
        sampler = TokenBudgetBatchSampler(*dataset.lengths(), max_tokens, shuffle=shuffle, seed=self.seed)
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=PadCollate(data, tok.pad_id, tok.bos_id, tok.eos_id),
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, max_tokens=self.max_tokens)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, max_tokens=self.val_max_tokens)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, max_tokens=self.val_max_tokens)


# ----------------------------------------------------------------------------- Multi30k

MULTI30K_COMMIT = "a3d2e0d26b56f3846f66a952536ffed4e401d05a"
MULTI30K_URL = f"https://raw.githubusercontent.com/multi30k/dataset/{MULTI30K_COMMIT}/data/task1/raw"
MULTI30K_LANGS = ("de", "en", "fr", "cs")
MULTI30K_REMOTE = {"train": "train", "val": "val", "test2016": "test_2016_flickr"}
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
    and downloads missing files (gzipped, from the multi30k/dataset repository at a pinned commit).
    """

    def __init__(self, data_dir: str = "data/multi30k", download: bool = True, base_url: str = MULTI30K_URL, **kw):
        for field in ("src_lang", "tgt_lang"):
            lang = kw.get(field, "de" if field == "src_lang" else "en")
            if lang not in MULTI30K_LANGS:
                raise ValueError(
                    f"data.{field}={lang!r} is not a Multi30k language; choose two of {', '.join(MULTI30K_LANGS)} "
                    f"(e.g. data.src_lang=en data.tgt_lang=de)"
                )
        kw.setdefault("train", "train")
        kw.setdefault("val", "val")
        kw.setdefault("test", "test2016")
        super().__init__(data_dir=data_dir, **kw)
        self.download, self.base_url = download, base_url

    def ensure_files(self) -> None:
        for split, prefix in self.prefixes.items():
            if prefix is None:
                continue
            for lang in (self.src_lang, self.tgt_lang):
                dest = self.path(split, lang)
                if dest.is_file():
                    continue
                if not self.download or prefix not in MULTI30K_REMOTE:
                    self._missing(split, lang)
                self._download(MULTI30K_REMOTE[prefix], lang, dest)

    def _download(self, remote: str, lang: str, dest: Path) -> None:
        hint = f"Put the Multi30k files into {self.data_dir.resolve()} or point data.data_dir (DATA_DIR) at them."
        gz = fetch(f"{self.base_url}/{remote}.{lang}.gz", dest.with_name(dest.name + ".gz"), hint=hint)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            with gzip.open(gz, "rb") as f_in, open(tmp, "wb") as f_out:
                shutil.copyfileobj(f_in, f_out)
            expected = MULTI30K_MD5.get(dest.name)
            if expected and (got := md5sum(tmp)) != expected:
                raise CorpusUnavailable(f"{dest.name} from {self.base_url} has md5 {got}, expected {expected}. {hint}")
            os.replace(tmp, dest)
        except OSError as err:
            raise CorpusUnavailable(f"could not unpack {gz} into {dest} ({err}). {hint}") from err
        finally:
            tmp.unlink(missing_ok=True)
            gz.unlink(missing_ok=True)
