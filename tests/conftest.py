"""Shared test set-up: local data only (../shared/data), offline W&B, throwaway logs and caches."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("DATA_DIR", str(SHARED_DATA))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(os.environ["DATA_DIR"]) / "tiktoken"))
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TFORMER_CACHE_DIR", str(ROOT / ".cache" / "tests"))
# OpenMP threads that sleep instead of spinning: on a small shared CPU, spinning threads make tiny ops
# (a batch-1 decoding step) up to 30x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder holding tinyshakespeare.txt (and multi30k/, tiktoken/)."""
    path = Path(os.environ["DATA_DIR"])
    if not (path / "tinyshakespeare.txt").is_file():
        pytest.fail(
            f"tinyshakespeare.txt not found in DATA_DIR={path}. Tests never download: point DATA_DIR at a "
            f"folder holding it (here ../shared/data)."
        )
    return path


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return Path(os.environ["TFORMER_CACHE_DIR"])


@pytest.fixture
def one_thread():
    """Tiny matmuls on a shared 2-core machine run far faster (and steadier) on one thread."""
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
