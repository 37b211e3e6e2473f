"""training/distributed.py: extra DDP ranks re-run exactly the current job; nothing distributed outlives a job."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import torch

from training.distributed import HydraJobLauncher, attach, env_rank_is_zero, job_command, job_scope

ROOT = Path(__file__).resolve().parents[2]


def test_extra_ranks_rerun_only_the_current_job(hydra_job, tmp_path):
    argv = ["train.py", "-m", "--config-dir", "extra_conf", "data.batch_size=16,32", "trainer=ddp",
            "hydra.sweep.dir=/somewhere", "hydra.verbose=tformer"]  # fmt: skip
    hydra_job(["data.batch_size=32", "trainer=ddp"], argv=argv, hydra_overrides=argv[-2:])
    command, cwd = job_command()
    assert command[0] == sys.executable and command[1] == str(ROOT / "train.py") and cwd == str(ROOT)
    assert command[2:4] == ["--config-dir", "extra_conf"]
    assert "-m" not in command and "data.batch_size=16,32" not in command
    assert "data.batch_size=32" in command and "trainer=ddp" in command
    assert "hydra.verbose=tformer" in command  # hydra overrides that shape the job are kept ...
    assert not any(c.startswith(("hydra.sweep.dir", "hydra.mode=MULTIRUN")) for c in command)  # ... the sweep's not
    job_dir = tmp_path / "logs" / "train" / "multiruns" / "2030-01-01_00-00-00" / "1"
    assert command[-3:] == ["hydra.mode=RUN", f'hydra.run.dir="{job_dir}"', "hydra.output_subdir=null"]


@pytest.mark.parametrize(
    "env, zero",
    [({}, True), ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True), ({"LOCAL_RANK": "1"}, False),
     ({"RANK": "3"}, False), ({"SLURM_PROCID": "2"}, False), ({"NODE_RANK": "1", "LOCAL_RANK": "0"}, False)],
)  # fmt: skip
def test_env_rank_is_zero(monkeypatch, env, zero):
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert env_rank_is_zero() is zero


def test_job_scope_tears_down_the_process_group_and_launch_env(tmp_path, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("MASTER_PORT", "1234")
    threads = torch.get_num_threads()
    with job_scope():
        torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
        os.environ.update(LOCAL_RANK="0", MASTER_PORT="5678", WORLD_SIZE="2")
        torch.set_num_threads(1)
    assert not torch.distributed.is_initialized()
    assert "LOCAL_RANK" not in os.environ and "WORLD_SIZE" not in os.environ  # or the next job skips its launch
    assert os.environ["MASTER_PORT"] == "1234"
    assert torch.get_num_threads() == threads


def test_attach_swaps_the_launcher_for_ddp_under_hydra(hydra_job):
    import lightning as L

    hydra_job(["trainer=ddp"])
    trainer = L.Trainer(strategy="ddp", accelerator="cpu", devices=2, logger=False, enable_checkpointing=False)
    attach(trainer, batch_size=8)
    assert type(trainer.strategy.launcher) is HydraJobLauncher
    assert trainer.strategy.launcher.num_processes == 2


def test_a_stuck_rank_is_named_with_its_process_state():
    import signal
    import subprocess

    from training.distributed import _is_timeout, _stuck_ranks

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        done.wait(timeout=30)
        sleeper.send_signal(signal.SIGSTOP)
        for _ in range(100):  # the stop is asynchronous
            if "stopped" in (_stuck_ranks([done, sleeper]) or ""):
                break
            time.sleep(0.05)
        assert _stuck_ranks([done, sleeper]) == f"local rank 2 (pid {sleeper.pid}, stopped)"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert _stuck_ranks([done, sleeper]) is None
    assert _is_timeout(RuntimeError("[gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 60000ms for recv"))
    assert not _is_timeout(RuntimeError("simulated failure on rank 0 at step 2"))
