"""Nothing lost, nothing hung, every mistake a one-line answer: train.py, sample.py and the other entry points
as subprocesses (docs/reliability.md lists each case with its test). DDP's stuck rank: tests/e2e/test_ddp.py."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.e2e.conftest import ROOT, TINY, run_dirs
from tests.e2e.procs import finish, kill_tree, start, train_env

pytestmark = pytest.mark.slow


def last_error_line(output: str) -> str:
    return [line for line in output.splitlines() if line.strip()][-1]


def assert_one_line_error(result, message: str) -> None:
    assert result.returncode == 1, result.output[-3000:]
    assert "Traceback" not in result.output, result.output[-3000:]
    assert last_error_line(result.stderr).startswith(f"Error: {message}"), result.output[-3000:]


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under folder: its content's hash and modification time."""
    return {
        str(p.relative_to(folder)): (hashlib.md5(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def copy_run(trained, tmp_path: Path) -> Path:
    """A copy of the shared tiny run, to write into."""
    run, _ = trained
    return Path(shutil.copytree(run, tmp_path / "logs" / "train" / "runs" / run.name))


def steps(metrics_csv: Path) -> list[int]:
    with open(metrics_csv) as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r["train/loss"]]


# --- data loss: run directories -------------------------------------------------------------------------


def test_two_runs_started_together_get_two_directories(tmp_path):
    env = train_env(tmp_path, OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(ROOT / "train.py"), *TINY, "cpu_time_check=false"]
    procs = [start(cmd, env=env, log=tmp_path / f"run{i}.log") for i in range(2)]
    codes = finish(procs, timeout=400)
    assert codes == [0, 0], "\n".join((tmp_path / f"run{i}.log").read_text()[-2000:] for i in range(2))
    runs = run_dirs(tmp_path)
    assert len(runs) == 2, runs
    for run in runs:
        assert yaml.safe_load((run / "config.yaml").read_text())["model"]["n_embd"] == 32
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
        assert steps(run / "csv" / "metrics.csv") == [0, 1, 2, 3]  # one run's rows each, not both runs' mixed
        assert (run / "train.log").read_text().count("Run directory:") == 1


def test_a_run_forced_into_another_runs_directory_fails_and_overwrites_nothing(trained, run_script, tmp_path):
    run = copy_run(trained, tmp_path)
    before = snapshot(run)
    result = run_script("train.py", *TINY, f"hydra.run.dir={run}", check=False)
    assert_one_line_error(result, f"hydra.run.dir={run} already holds another run (config.yaml, checkpoints)")
    assert snapshot(run) == before


def test_resuming_in_place_continues_the_run_and_keeps_its_metrics(trained, run_script, tmp_path):
    run = copy_run(trained, tmp_path)
    earlier = (run / "csv" / "metrics.csv").read_text()
    run_script("train.py", *TINY, f"hydra.run.dir={run}", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
               "trainer.max_steps=6")  # fmt: skip
    assert (run / "csv" / "metrics.1.csv").read_text() == earlier
    assert steps(run / "csv" / "metrics.csv") == [4, 5]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 6
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_steps"] == 6


# --- data loss: checkpoints -------------------------------------------------------------------------------


def files_in(tmpdir: Path) -> list[Path]:
    """Files directly in $TMPDIR, where Lightning's own CheckpointIO puts its temporary checkpoint (torch keeps
    caches in folders there)."""
    return [p for p in tmpdir.iterdir() if p.is_file()]


def test_a_kill_during_a_checkpoint_write_leaves_complete_checkpoints(tmp_path):
    """$TMPDIR on another filesystem (tmpfs /dev/shm) and train.py killed (-9) while it writes a checkpoint:
    every checkpoint still loads (the old one or the new one), and nothing is left in $TMPDIR."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the run directory")
    tmpdir = Path(tempfile.mkdtemp(dir=shm, prefix="tformer-test-"))
    run = tmp_path / "logs" / "train" / "runs" / "killed"
    ckpts = run / "checkpoints"
    ballast = ["+callbacks.ballast._target_=tests.e2e.ckpt_probe.Ballast", "+callbacks.ballast.mb=64"]
    args = [*TINY, "trainer.max_steps=10", "cpu_time_check=false", f"hydra.run.dir={run}", *ballast]
    env = train_env(tmp_path, TMPDIR=str(tmpdir), OMP_NUM_THREADS="1")
    proc = start([sys.executable, str(ROOT / "train.py"), *args], env=env, log=tmp_path / "killed.log")
    caught: list[Path] = []
    try:
        deadline = time.monotonic() + 400
        while not caught:  # from the second save on (64 MiB each), kill as soon as a temporary file appears
            assert proc.poll() is None, "train.py ended first:\n" + (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint write caught in time"
            if (ckpts / "last.ckpt").exists():
                caught = list(ckpts.glob(".*.tmp")) + files_in(tmpdir)
                if caught:
                    os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.002)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        assert not files_in(tmpdir), f"left in TMPDIR: {files_in(tmpdir)}"
        assert all(p.parent == ckpts for p in caught), caught  # the temporary file was written beside
        saved = {p.name: torch.load(p, weights_only=False)["global_step"] for p in ckpts.glob("*.ckpt")}
        assert set(saved) == {"best.ckpt", "last.ckpt"} and saved["last.ckpt"] in (2, 4, 6, 8, 10), saved
    finally:
        kill_tree(proc)
        shutil.rmtree(tmpdir, ignore_errors=True)


# --- runs that never end or do nothing -------------------------------------------------------------------


def test_resuming_with_max_steps_at_or_below_the_checkpoints_step_fails(trained, run_script, tmp_path):
    run, _ = trained
    result = run_script("train.py", *TINY, f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "trainer.max_steps=3",
                        check=False)  # fmt: skip
    assert_one_line_error(result, "trainer.max_steps=3 but ckpt_path=")
    assert "has already trained 4 steps: nothing left to train; raise trainer.max_steps above 4" in result.stderr
    assert "Best checkpoint" not in result.output
    assert not list((tmp_path / "logs").glob("train/runs/*/checkpoints"))


def test_a_resumed_run_that_saves_no_better_checkpoint_says_so(trained, run_script, tmp_path):
    run, _ = trained
    old_best = run / "checkpoints" / "best.ckpt"
    result = run_script(
        "train.py",
        *TINY,
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        "trainer.max_steps=6",
        "trainer.val_check_interval=100",
        "~callbacks.validate_at_end",
    )  # fmt: skip  (no validation in steps 4-5, none at the end either)
    assert f"Best checkpoint: none saved by this run (the resumed run's best: {old_best})" in result.output
    assert f"Best checkpoint: {old_best} (" not in result.output


def test_a_multirun_in_which_every_job_fails_exits_1(run_script, tmp_path):
    result = run_script("train.py", "-m", *TINY, "model.n_head=3,5", check=False)
    assert result.returncode == 1, result.output[-3000:]
    assert "Multirun: every job failed (2 of 2)" in result.output
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    status = [json.loads((sweep / str(job) / "status.json").read_text()) for job in (0, 1)]
    assert [s["status"] for s in status] == ["failed", "failed"]
    assert status[1]["error"] == "ConfigError: model.n_embd=32 is not divisible by model.n_head=5: pick n_embd as a "\
        "multiple of n_head (e.g. model.n_embd=30)"  # fmt: skip
    assert "job,status" in (sweep / "summary.csv").read_text()


# --- messages a user can act on ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optim.beta2=1.5"], "optim.beta2=1.5 must be in [0, 1)"),
        (["model.attention=flash"], "model.attention=flash needs a CUDA GPU"),
    ],
    ids=["beta2", "flash"],
)  # each check's message is a unit test (tests/training/test_checks.py); here the way it reaches the user
def test_bad_input_is_one_line_without_traceback(run_script, overrides, message, tmp_path):
    assert_one_line_error(run_script("train.py", *TINY, *overrides, check=False), message)
    assert not list((tmp_path / "logs").glob("train/runs/*/checkpoints"))


def test_full_error_shows_the_traceback_and_bugs_keep_theirs(run_script):
    result = run_script("train.py", *TINY, "optim.beta2=1.5", check=False, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0 and "Traceback" in result.output and "optim.beta2=1.5" in result.output
    bug = ["+callbacks.boom._target_=tests.e2e.ddp_probe.FailOnRank", "+callbacks.boom.rank=0"]
    bug += ["+callbacks.boom.step=0"]
    result = run_script("train.py", *TINY, *bug, check=False)
    assert result.returncode != 0 and "Traceback" in result.output
    assert "RuntimeError: simulated failure on rank 0 at step 0" in result.output
    assert not [line for line in result.stderr.splitlines() if line.startswith("Error: ")]  # not a user error


def test_resuming_with_another_size_names_the_field(trained, run_script):
    run, _ = trained
    ckpt = run / "checkpoints" / "last.ckpt"
    result = run_script("train.py", *TINY, f"ckpt_path={ckpt}", "model.n_embd=64", "trainer.max_steps=8", check=False)
    assert_one_line_error(result, f"ckpt_path={ckpt}: the checkpoint has model.n_embd=32, but this run has "
                                  f"model.n_embd=64")  # fmt: skip
    assert "size mismatch" not in result.output


@pytest.mark.parametrize(
    "option, message",
    [
        ("num_samples=0", "num_samples=0 must be a positive integer"),
        ("max_new_tokens=-5", "max_new_tokens=-5 must be a positive integer"),
    ],
)
def test_sample_rejects_bad_options_in_one_line(trained, run_script, option, message):
    run, _ = trained
    assert_one_line_error(run_script("sample.py", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", option,
                                     check=False), message)  # fmt: skip


def test_sample_prompt_takes_any_text(trained, run_script):
    run, _ = trained
    prompt = "ROMEO: Hello, world! 'tis so"  # Hydra's parser alone rejects ':' ',' '!' and "'" unquoted
    out = run_script("sample.py", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", f"prompt={prompt}",
                     "num_samples=1", "max_new_tokens=5")  # fmt: skip
    assert out.stdout.split("--- sample 0 ---\n", 1)[1].startswith(prompt)


def test_the_other_entry_points_report_user_errors_in_one_line(run_script, tmp_path):
    result = run_script("estimate.py", "model.n_embd=30", "model.n_head=4", check=False)
    assert_one_line_error(result, "model.n_embd=30 is not divisible by model.n_head=4")
    result = run_script("translate.py", "ckpt_path=/no/such.ckpt", "text=Hallo, Welt!", check=False)
    assert_one_line_error(result, "ckpt_path=/no/such.ckpt does not exist")
    result = run_script("report.py", str(tmp_path / "nowhere"), check=False)
    assert_one_line_error(result, f"{tmp_path / 'nowhere'} is not a directory")
