"""DDP on CPU processes (gloo): a single run, a multirun and two torchrun "nodes", each as train.py subprocesses.

Never start DDP inside the pytest process: Lightning's launcher would re-run pytest for the extra ranks.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch

from tests.e2e.procs import ROOT, finish, free_port, run_train, start, train_env

pytestmark = pytest.mark.slow

# Tiny DDP runs: 2 CPU ranks x 4 steps, one short validation, CSV only; each rank saves what it saw.
DDP = [
    "model=gpt_nano",
    "model.n_layer=2",
    "model.n_embd=32",
    "data.batch_size=8",
    "data.block_size=32",
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_model_summary=false",
    "callbacks.generation.num_samples=2",
    "callbacks.generation.num_words=5",
    "logger=csv",
    "sample.max_new_tokens=20",
    "cpu_time_check=false",
    "+callbacks.probe._target_=tests.e2e.ddp_probe.ShardProbe",
    "+callbacks.probe.out_dir=${paths.output_dir}/probe",
]


def read_probes(run_dir, world: int = 2) -> list[dict]:
    probes = [json.loads((run_dir / "probe" / f"rank{r}.json").read_text()) for r in range(world)]
    assert [p["world_size"] for p in probes] == [world] * world
    return probes


def assert_one_run_written_once(run_dir) -> None:
    """Rank zero alone wrote the run: one .hydra/, one config.yaml, one log, one checkpoint directory."""
    assert sorted(p.name for p in (run_dir / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert (run_dir / "config.yaml").is_file() and (run_dir / "train.log").is_file()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4
    log = (run_dir / "train.log").read_text()
    assert log.count("Run directory:") == 1, "an extra rank logged into the run's log file"


def test_ddp_two_cpu_processes_single_run(tmp_path):
    code, out = run_train([*DDP, "model.n_head=2"], tmp_path=tmp_path, name="ddp")
    assert code == 0, out[-4000:]
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()  # the extra rank made no run dir of its own
    assert_one_run_written_once(run_dir)
    assert "effective batch is data.batch_size x processes x accumulate_grad_batches = 8 x 2 x 1 = 16" in out
    assert "All distributed processes registered. Starting with 2 processes" in out
    assert out.count("WARNING: optim.warmup_steps=100 is longer than the run") == 1, "a warning printed per rank"

    r0, r1 = read_probes(run_dir)
    assert r0["first_train_windows"] != r1["first_train_windows"], "both ranks drew the same training batch"
    assert r0["val_sampler"] == "DistributedSampler"
    v0, v1 = set(r0["val_indices"]), set(r1["val_indices"])
    assert not v0 & v1, "ranks validated on overlapping windows"
    assert v0 | v1 == set(range(r0["val_windows"])), "the ranks' validation shards do not cover the split"


def test_ddp_multirun_each_rank_joins_its_job(tmp_path):
    """4 jobs under -m: n_head=3 does not divide n_embd=32 (fails before any rank starts); in job 1 the second rank
    dies at step 2; the sweep goes on and job 3 trains on a fresh process group."""
    boom = ["+callbacks.boom._target_=tests.e2e.ddp_probe.FailOnRank", "+callbacks.boom.rank=1,-1"]
    code, out = run_train(["-m", *DDP, *boom, "model.n_head=3,2"], tmp_path=tmp_path, name="ddp_multirun", timeout=400)
    assert code == 0, out[-4000:]
    train_logs = tmp_path / "logs" / "train"
    assert not (train_logs / "runs").exists(), "an extra rank started a run of its own"
    (sweep,) = (train_logs / "multiruns").iterdir()  # ... or a sweep of its own
    assert out.count("Launching 4 jobs locally") == 1
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]
    status = [json.loads((sweep / str(job) / "status.json").read_text()) for job in range(4)]
    assert [s["status"] for s in status] == ["failed", "failed", "failed", "completed"]

    for job in (0, 2):
        assert "ConfigError: model.n_embd=32 is not divisible by model.n_head=3" in status[job]["error"]
        assert not (sweep / str(job) / "checkpoints").exists()
    assert "DDP: local rank 1 exited with code 1" in status[1]["error"]
    assert "simulated failure on rank 1 at step 2" in out  # the rank's own error is in the output
    assert_one_run_written_once(sweep / "3")
    r0, r1 = read_probes(sweep / "3")
    assert r0["first_train_windows"] != r1["first_train_windows"]
    assert "Multirun: 4 job(s), 1 completed, 3 failed" in out
    # both DDP jobs built their own process group: the first one was torn down in between
    assert out.count("All distributed processes registered. Starting with 2 processes") == 2


def test_a_stopped_rank_ends_the_run_within_the_timeout(tmp_path):
    """The second rank stops itself (SIGSTOP) at step 2: alive, but never answering. With the process-group timeout
    shortened to 45 s (the extra rank must still start within it), rank zero gives up, names the stopped
    rank and kills it; no process outlives train.py (run_train checks), and a hang fails at run_train's timeout."""
    stop = ["+callbacks.stop._target_=tests.e2e.ddp_probe.StopOnRank", "+callbacks.stop.rank=1"]
    code, out = run_train([*DDP, "model.n_head=2", *stop, "trainer.strategy.timeout.minutes=0",
                 "+trainer.strategy.timeout.seconds=45"], tmp_path=tmp_path,
                          name="stopped", timeout=400)  # fmt: skip
    assert code != 0, out[-4000:]
    assert re.search(r"DDP: local rank 1 \(pid \d+, stopped\) did not take part in a collective operation within "
                     r"the process-group timeout \(trainer.strategy.timeout\)", out), out[-4000:]  # fmt: skip
    assert "Timed out waiting 45000ms" in out  # gloo's own words, after the configured 45 s


def test_two_torchrun_nodes_on_localhost(tmp_path):
    """Two torchrun agents (node ranks 0 and 1, one CPU process each) form one 2-process job over 127.0.0.1."""
    run_dir = tmp_path / "logs" / "train" / "runs" / "two_nodes"
    args = [a for a in DDP if not a.startswith("trainer.devices")]
    args += ["model.n_head=2", "trainer.devices=1", "trainer.num_nodes=2", f"hydra.run.dir={run_dir}"]
    port = free_port()
    procs = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
               f"--node-rank={node}", "--master-addr=127.0.0.1", f"--master-port={port}",
               str(ROOT / "train.py"), *args]  # fmt: skip
        procs.append(start(cmd, env=train_env(tmp_path), log=tmp_path / f"node{node}.log"))
    codes = finish(procs, timeout=300)
    outs = [(tmp_path / f"node{n}.log").read_text(errors="replace") for n in (0, 1)]
    assert codes == [0, 0], outs[0][-3000:] + "\n----- node 1 -----\n" + outs[1][-3000:]
    assert "All distributed processes registered. Starting with 2 processes" in outs[0]
    assert "Run directory:" not in outs[1]  # the extra rank prints warnings and errors only
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["two_nodes"]
    assert_one_run_written_once(run_dir)
    r0, r1 = read_probes(run_dir)
    assert (r0["global_rank"], r1["global_rank"]) == (0, 1)
    assert r0["first_train_windows"] != r1["first_train_windows"]
