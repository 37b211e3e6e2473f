"""Run the entry points (train.py, sample.py, ...) as subprocesses, the way users do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import zygote

ROOT = Path(__file__).resolve().parents[2]

# The smallest useful run: a 2-layer char GPT for a handful of steps, CSV logging only.
TINY = [
    "model=gpt_nano",
    "model.n_layer=2",
    "model.n_embd=32",
    "model.n_head=2",
    "data.batch_size=8",
    "data.block_size=32",
    "trainer=debug",
    "logger=csv",
    "sample.max_new_tokens=40",
    "callbacks.generation.num_samples=2",
    "callbacks.generation.num_words=5",
]


class Result(subprocess.CompletedProcess):
    @property
    def output(self) -> str:
        return (self.stdout or "") + (self.stderr or "")


@pytest.fixture
def run_script(tmp_path):
    """run_script("train.py", *overrides, check=True) -> CompletedProcess, logs under tmp_path/logs."""

    def run(script: str, *args: str, check: bool = True, timeout: float = 300, env: dict | None = None) -> Result:
        full_env = {**os.environ, "TFORMER_LOG_DIR": str(tmp_path / "logs"), "HYDRA_FULL_ERROR": "0"}
        full_env.update(env or {})
        argv = [sys.executable, str(ROOT / script), *args]
        proc = zygote.run(argv, env=full_env, cwd=ROOT, tmp=tmp_path / "procs", timeout=timeout)
        result = Result(proc.args, proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"{script} {' '.join(args)} exited {proc.returncode}:\n{result.output[-4000:]}")
        return result

    return run


def run_dirs(tmp_path: Path, task: str = "train") -> list[Path]:
    """Run directories created under tmp_path/logs by train.py, oldest first."""
    return sorted((tmp_path / "logs" / task / "runs").glob("*"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, str]:
    """One tiny training run shared by the e2e tests that read it (never write into it: copy it first):
    (run directory, stdout+stderr)."""
    logs = tmp_path_factory.mktemp("logs")
    env = {**os.environ, "TFORMER_LOG_DIR": str(logs)}
    proc = zygote.run([sys.executable, "train.py", *TINY], env=env, cwd=ROOT, tmp=logs / "procs", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = sorted((logs / "train" / "runs").glob("*"))
    return run, proc.stdout + proc.stderr
