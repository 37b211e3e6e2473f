"""A stop signal is a checkpoint, never a success: signals sent to real train.py processes (a single run, a
multirun, 2 DDP ranks) end them with last.ckpt at the current step and exit 128 + the signal, and the README's
resume line continues the run from that checkpoint alone. In-process details: tests/training/test_signals.py."""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.e2e.conftest import ROOT, TINY, run_dirs
from tests.e2e.procs import group_alive, kill_tree, start, train_env

pytestmark = pytest.mark.slow

LONG = ["trainer.max_steps=2000", "trainer.val_check_interval=1000", "cpu_time_check=false"]


def marker_args(marker: Path, step: int = 3) -> list[str]:
    return ["+callbacks.marker._target_=tests.e2e.ckpt_probe.StepMarker", f"+callbacks.marker.path={marker}",
            f"+callbacks.marker.step={step}"]  # fmt: skip


def signalled(tmp_path: Path, args: list[str], signum: int, *, name: str, group: bool = False) -> tuple[int, str]:
    """Start train.py, send `signum` once it has trained a few steps -> (exit status, output)."""
    marker = tmp_path / f"{name}.reached"
    log = tmp_path / f"{name}.log"
    proc = start([sys.executable, str(ROOT / "train.py"), *args, *marker_args(marker)],
                 env=train_env(tmp_path, OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="0"), log=log)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None, f"train.py ended first:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "training never reached the marker step"
            time.sleep(0.05)
        (os.killpg if group else os.kill)(proc.pid, signum)
        code = proc.wait(timeout=120)
        time.sleep(1)
        assert not group_alive(proc.pid), "a process of the run outlived it"
    finally:
        kill_tree(proc)
    return code, log.read_text(errors="replace")


def step_of(path: Path) -> int:
    return torch.load(path, weights_only=True)["global_step"]


def test_sigterm_saves_the_current_step_and_the_checkpoint_alone_resumes_it(tmp_path, run_script):
    code, output = signalled(tmp_path, [*TINY, *LONG], signal.SIGTERM, name="term")
    assert code == 143, output[-3000:]
    (run,) = run_dirs(tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    step = step_of(last)
    assert 3 <= step < 1000  # the step it was at, not the (never reached) validation's
    assert f"Stopped by SIGTERM at step {step} of 2000: {last} saved. Resume with: python train.py ckpt_path={last}" \
        in output  # fmt: skip
    assert json.loads((run / "measure.json").read_text())["steps"] == step
    assert not list((run / "checkpoints").glob(".*.tmp"))
    # The README's line, with nothing but the checkpoint (and a new end): the run's own sizes come with it.
    resumed = run_script("train.py", f"ckpt_path={last}", f"trainer.max_steps={step + 2}")
    new = [r for r in run_dirs(tmp_path) if r != run][0]
    assert step_of(new / "checkpoints" / "last.ckpt") == step + 2
    assert f"Resuming {last} (step {step}) with its run's settings: model=gpt_nano" in resumed.output
    assert f"{step + 2}/{step + 2}" in resumed.output  # the progress bar's real total, not "?"
    assert "dirpath has changed" not in resumed.output
    assert "n_embd: 32" in (new / "config.yaml").read_text()


@pytest.mark.parametrize("signum, code, name", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGUSR1, 138, "SIGUSR1")])
def test_ctrl_c_and_sigusr1_save_and_exit_non_zero(tmp_path, signum, code, name):
    status, output = signalled(tmp_path, [*TINY, *LONG], signum, name=name, group=signum == signal.SIGINT)
    assert status == code, output[-3000:]
    (run,) = run_dirs(tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    assert f"Stopped by {name} at step {step_of(last)} of 2000: {last} saved. Resume with:" in output


def test_sigterm_ends_a_multirun_with_the_job_terminated_and_the_summary_written(tmp_path):
    code, output = signalled(tmp_path, ["-m", *TINY, *LONG, "model.n_layer=1,2"], signal.SIGTERM, name="sweep")
    assert code == 143, output[-3000:]
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    status = json.loads((sweep / "0" / "status.json").read_text())
    assert status["status"] == "terminated" and status["signal"] == "SIGTERM"
    assert step_of(Path(status["checkpoint"])) == status["step"] >= 3
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "terminated")]
    assert not (sweep / "1").exists()  # the scheduler's stop ends the sweep
    assert "Multirun stopped by SIGTERM during job 0" in output


def test_sigterm_to_rank_zero_of_ddp_stops_both_ranks_at_one_step(tmp_path):
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.num_sanity_val_steps=0"]
    code, output = signalled(tmp_path, [*TINY, *LONG, *ddp], signal.SIGTERM, name="ddp")  # rank zero's pid only
    assert code == 143, output[-3000:]
    (run,) = run_dirs(tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    assert f"Stopped by SIGTERM at step {step_of(last)} of 2000: {last} saved" in output
