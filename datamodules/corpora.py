"""Every corpus the configs use, fetched into one data folder and checked: `make data`.

    python -m datamodules.corpora [data_dir]        # default: $DATA_DIR, else ./data

- tinyshakespeare.txt: downloaded by the Shakespeare DataModule's code (size and md5 checked);
- multi30k/{train,val,test2016}.{de,en}: downloaded by Multi30kDataModule (md5 of each file checked);
- tiktoken/<sha1 of the URL>: GPT-2's vocab.bpe and encoder.json, named as tiktoken caches them (tiktoken
  downloads them itself into TIKTOKEN_CACHE_DIR = <data_dir>/tiktoken; sha256 checked).
Files already there are checked, not downloaded again. Exits 1, naming each problem, if any corpus is not right.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from datamodules.files import fetch, md5sum
from datamodules.multi30k import MULTI30K_MD5, Multi30kDataModule
from datamodules.shakespeare import FILENAME, MD5, SIZE, URL

GPT2_BPE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main"
# tiktoken's cache file name (sha1 of the URL) -> (URL, sha256 of the file, as tiktoken_ext/openai_public.py has it)
GPT2_BPE = {
    hashlib.sha1(f"{GPT2_BPE_URL}/{name}".encode()).hexdigest(): (f"{GPT2_BPE_URL}/{name}", sha256)
    for name, sha256 in (
        ("vocab.bpe", "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
        ("encoder.json", "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
    )
}


def check_shakespeare(data_dir: Path) -> list[str]:
    path = data_dir / FILENAME
    if not path.is_file():
        return [f"{path} is missing"]
    if (size := path.stat().st_size) != SIZE or md5sum(path) != MD5:
        return [f"{path} is not Tiny Shakespeare ({size} bytes, expected {SIZE}; md5 must be {MD5})"]
    return []


def check_multi30k(data_dir: Path) -> list[str]:
    problems = []
    for name, md5 in MULTI30K_MD5.items():
        path = data_dir / "multi30k" / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif md5sum(path) != md5:
            problems.append(f"{path} has md5 {md5sum(path)}, expected {md5}")
    return problems


def check_gpt2_bpe(data_dir: Path) -> list[str]:
    problems = []
    for name, (url, sha256) in GPT2_BPE.items():
        path = data_dir / "tiktoken" / name
        if not path.is_file():
            problems.append(f"{path} ({url}) is missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
            problems.append(f"{path} ({url}) has the wrong sha256")
    return problems


def fetch_shakespeare(data_dir: Path) -> None:
    hint = (
        f"Without network: copy {FILENAME} ({SIZE:,} bytes, md5 {MD5}) from another machine into "
        f"{data_dir.resolve()}, then run `make data` again."
    )
    fetch(URL, data_dir / FILENAME, size=SIZE, md5=MD5, hint=hint)


def fetch_multi30k(data_dir: Path) -> None:
    Multi30kDataModule(data_dir=str(data_dir / "multi30k")).ensure_files()


def fetch_gpt2_bpe(data_dir: Path) -> None:
    from tiktoken.load import read_file_cached

    from datamodules.text_tokenizers import MAKE_DATA_HINT

    cache = data_dir / "tiktoken"
    cache.mkdir(parents=True, exist_ok=True)
    before = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache.resolve())
    try:  # tiktoken's own loader: downloads a missing file into its cache, checks its sha256. (Not get_encoding:
        # it returns an encoding this process already loaded without looking at the cache folder.)
        for url, sha256 in GPT2_BPE.values():
            try:
                read_file_cached(url, sha256)
            except Exception as err:  # requests/OS/hash errors when the file cannot be fetched
                raise RuntimeError(
                    f"tiktoken could not fetch {url} ({type(err).__name__}: {err}). Without network access, copy "
                    f"its cached files into {cache} from another machine; {MAKE_DATA_HINT}"
                ) from err
    finally:
        if before is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR")
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = before


CORPORA: dict[str, tuple[Callable[[Path], None], Callable[[Path], list[str]]]] = {
    "Tiny Shakespeare": (fetch_shakespeare, check_shakespeare),
    "Multi30k": (fetch_multi30k, check_multi30k),
    "GPT-2 BPE (tiktoken)": (fetch_gpt2_bpe, check_gpt2_bpe),
}


def fetch_all(data_dir: Path) -> dict[str, list[str]]:
    """Fetch what is missing, then check everything: {corpus: problems} (empty lists when all is well)."""
    report = {}
    for name, (get, check) in CORPORA.items():
        problems = []
        if check(data_dir):
            try:
                get(data_dir)
            except Exception as err:  # each corpus's own error names the file, the URL and the fix
                problems.append(f"{type(err).__name__}: {err}")
        report[name] = problems + check(data_dir)
    return report


def main(argv: list[str]) -> int:
    data_dir = Path(argv[0] if argv else os.environ.get("DATA_DIR") or "data").expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    report = fetch_all(data_dir)
    for name, problems in report.items():
        print(f"{name}: {'ok' if not problems else 'FAILED'}")
        for problem in dict.fromkeys(problems):
            print(f"  - {problem}")
    print(f"data folder: {data_dir.resolve()}")
    return 1 if any(report.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
