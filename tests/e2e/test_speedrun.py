"""experiment=shakespeare_char_speedrun at tiny size on CPU: it stops at its target and says when."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from tests.e2e.conftest import run_dirs

TINY_SPEEDRUN = [
    "experiment=shakespeare_char_speedrun",
    "model.n_layer=1",
    "model.n_embd=32",
    "model.n_head=2",
    "data.batch_size=8",
    "data.block_size=32",
    "data.val_batch_size=null",
    "trainer.max_steps=8",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=1",
]


@pytest.mark.slow
def test_speedrun_stops_at_its_target(run_script, tmp_path):
    output = run_script("train.py", *TINY_SPEEDRUN, "callbacks.target.target=100", env={"OMP_NUM_THREADS": "1"}).output
    assert "weights_only" not in output  # target.ckpt is saved whole, without Lightning's "defaulting" line
    (run,) = run_dirs(tmp_path)
    record = json.loads((run / "target.json").read_text())
    assert record["reached"] and record["step"] == 2 and record["target"] == 100.0  # stopped at the first val
    assert 0 < record["elapsed_since_launch"]
    ckpt = torch.load(run / "checkpoints" / "target.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2 and ckpt["tformer_family"] == "gpt"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["target.ckpt"]  # no checkpoint while training
    assert not (run / "samples.txt").exists()
    with open(run / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert max(int(r["step"]) for r in rows) <= 2
    assert [float(r["perf/elapsed"]) for r in rows if r.get("perf/elapsed")]  # time since launch per validation
    assert not (run / "wandb").exists()  # CSV logging only
    cfg = (run / "config.yaml").read_text()
    assert "device_resident: true" in cfg and "compile_scope: blocks" in cfg and "compile: false" in cfg  # CPU


@pytest.mark.slow
def test_speedrun_that_misses_its_target_runs_to_max_steps(run_script, tmp_path):
    run_script("train.py", *TINY_SPEEDRUN, "trainer.max_steps=4", env={"OMP_NUM_THREADS": "1"})
    (run,) = run_dirs(tmp_path)
    record = json.loads((run / "target.json").read_text())
    assert not record["reached"] and record["steps"] == 4 and record["best"] > 1.47
