"""Shared test set-up: generated corpora, the real ones only where a test asks, no network, offline W&B.

- DATA_DIR (for in-process code and every subprocess) is a folder of small corpora the tests generate
  (tests/corpora.py). Tests that check the real corpora ask for the `shakespeare_dir`, `multi30k_dir` or
  `gpt2_bpe` fixtures, which skip with a one-line reason when the corpus is missing (`make data` fetches them).
  The real corpora are looked for in $DATA_DIR as given to pytest, else ../shared/data, else ./data.
- No test touches the network: tests/offline/network_guard.py refuses connections to other machines here and
  (through PYTHONPATH and tests/offline/sitecustomize.py) in every process the tests start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = ROOT / "tests" / "offline"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from datamodules.corpora import GPT2_BPE  # noqa: E402
from tests.corpora import write_corpora  # noqa: E402
from tests.offline import network_guard  # noqa: E402


def _real_data_dir() -> Path:
    # TFORMER_REAL_DATA_DIR: what DATA_DIR was before this file pointed it at the generated corpora (pytest-xdist
    # workers inherit the changed DATA_DIR).
    given = os.environ.get("TFORMER_REAL_DATA_DIR") or os.environ.get("DATA_DIR")
    if given:
        return Path(given).expanduser().resolve()
    shared = ROOT.parent / "shared" / "data"
    return shared if shared.is_dir() else ROOT / "data"


REAL_DATA_DIR = _real_data_dir()
os.environ["TFORMER_REAL_DATA_DIR"] = str(REAL_DATA_DIR)
GPT2_BPE_FILES = tuple(GPT2_BPE)  # tiktoken's cache names of GPT-2's vocab.bpe and encoder.json
TIKTOKEN_DIR = Path(os.environ.get("TIKTOKEN_CACHE_DIR") or REAL_DATA_DIR / "tiktoken").resolve()  # as REAL_DATA_DIR
CACHE_DIR = Path(os.environ.setdefault("TFORMER_CACHE_DIR", str(ROOT / ".cache" / "tests")))
CORPORA = write_corpora(CACHE_DIR / "corpora")

os.environ["DATA_DIR"] = str(CORPORA)
if all((TIKTOKEN_DIR / f).is_file() for f in GPT2_BPE_FILES):
    os.environ["TIKTOKEN_CACHE_DIR"] = str(TIKTOKEN_DIR)
else:  # an empty value would make tiktoken ignore its cache; unset, the gpt2_bpe fixture skips
    os.environ.pop("TIKTOKEN_CACHE_DIR", None)
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(CACHE_DIR / "inductor"))  # compile=true runs: warm after once
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(OFFLINE), os.environ.get("PYTHONPATH")) if p)
# OpenMP threads that sleep instead of spinning: on a small shared CPU, spinning threads make tiny ops
# (a batch-1 decoding step) up to 30x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Under pytest-xdist (make test runs -n auto), the processes the tests start share the cores between the workers.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))
network_guard.install()


def _real(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"needs {what}: {path} is missing (run `make data`, or point DATA_DIR at the corpora)")
    return path


@pytest.fixture(scope="session")
def shakespeare_dir() -> Path:
    """The real corpora's folder, holding Tiny Shakespeare (skips without it)."""
    _real(REAL_DATA_DIR / "tinyshakespeare.txt", "Tiny Shakespeare")
    return REAL_DATA_DIR


@pytest.fixture(scope="session")
def multi30k_dir() -> Path:
    """The real Multi30k files (skips without them)."""
    root = REAL_DATA_DIR / "multi30k"
    for name in ("train.de", "train.en", "val.de", "val.en", "test2016.de", "test2016.en"):
        _real(root / name, "Multi30k")
    return root


@pytest.fixture(scope="session")
def gpt2_bpe() -> Path:
    """tiktoken's cache holding GPT-2's BPE files (skips without them)."""
    for name in GPT2_BPE_FILES:
        _real(TIKTOKEN_DIR / name, "GPT-2's BPE files (tiktoken cache, TIKTOKEN_CACHE_DIR)")
    return TIKTOKEN_DIR


@pytest.fixture(scope="session")
def corpora() -> Path:
    """The generated corpora (DATA_DIR of every test): tinyshakespeare.txt and multi30k/."""
    return CORPORA


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return CACHE_DIR


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread_in_pytest():
    """In-process tests (and their module- and session-scoped fixtures) run tiny models on one thread: faster and
    steadier on a small shared CPU than contending threads (a 150-step overfit: 4 s instead of 40 s on a busy 2-core
    machine), and one float summation order for the equivalence tests. Subprocesses choose their own."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def parallel_datamodule(root: Path, cache: Path, **kw):
    """A ParallelCorpusDataModule over the corpus in root, prepared and set up for fit."""
    from datamodules.translation import ParallelCorpusDataModule

    dm = ParallelCorpusDataModule(**{"data_dir": str(root), "cache_dir": str(cache), "max_len": 32, **kw})
    dm.prepare_data()
    dm.setup("fit")
    return dm


def pytest_collection_modifyitems(items):
    """Tests that start processes (the run_script fixture) must be marked slow, so that `make test-fast` skips them."""
    unmarked = [i.nodeid for i in items if "run_script" in i.fixturenames and not i.get_closest_marker("slow")]
    if unmarked:
        raise pytest.UsageError(f"mark these @pytest.mark.slow (they run entry points as subprocesses): {unmarked}")
