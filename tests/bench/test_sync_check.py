"""bench/sync_check.py runs train.py as itself (its overrides, its run directory, its exit status); on CUDA it adds
torch's sync warnings, which a CPU machine cannot show."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

TINY = ["experiment=nanogpt_shakespeare_char", "model.n_layer=1", "model.n_head=2", "model.n_embd=32",
        "data.batch_size=4", "data.block_size=32", "trainer.max_steps=3", "trainer.limit_val_batches=1",
        "compile=false", "logger=csv", "callbacks.samples=null", "callbacks.generation=null",
        "cpu_time_check=false"]  # fmt: skip


@pytest.mark.slow
def test_sync_check_trains_like_train_py(tmp_path, shakespeare_dir):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "bench/sync_check.py", *TINY, f"hydra.run.dir={run}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run / "measure.json").read_text())["steps"] == 3
    bad = subprocess.run([sys.executable, "bench/sync_check.py", "model.n_layr=1", f"hydra.run.dir={tmp_path / 'x'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode != 0 and "n_layr" in bad.stdout + bad.stderr  # train.py's own one-line error
