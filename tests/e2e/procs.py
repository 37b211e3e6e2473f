"""Helpers for the distributed and sweep tests: process trees that never outlive a test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests import zygote

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], *, env: dict, log: Path):
    """Start cmd in its own process group (so that it and every rank it starts can be killed together), its output
    in log; an entry point is forked from the test zygote (tests/zygote.py), anything else is a subprocess."""
    log.write_text("")
    return zygote.spawn(cmd, env=env, cwd=ROOT, stdout=log, new_session=True)


def finish(procs: list[subprocess.Popen], timeout: float) -> list[int]:
    """Wait for every process; past the timeout kill all their process groups and fail."""
    try:
        return [p.wait(timeout=timeout) for p in procs]
    except subprocess.TimeoutExpired:
        raise AssertionError(f"timed out after {timeout:.0f} s: {[p.args for p in procs]}") from None
    finally:
        for p in procs:
            kill_tree(p)


def kill_tree(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    p.wait()


def train_env(tmp_path: Path, **extra: str) -> dict:
    return {**os.environ, "TFORMER_LOG_DIR": str(tmp_path / "logs"), "HYDRA_FULL_ERROR": "1", **extra}


def run_train(args: list[str], *, tmp_path: Path, name: str, timeout: float = 300) -> tuple[int, str]:
    """python train.py *args in its own process group, output in tmp_path/<name>.log -> (returncode, output).

    Fails if a process of the group (an extra DDP rank) outlives train.py; kills the whole group on timeout.
    """
    log = tmp_path / f"{name}.log"
    proc = start([sys.executable, str(ROOT / "train.py"), *args], env=train_env(tmp_path), log=log)
    try:
        code = proc.wait(timeout=timeout)
        leftover = group_alive(proc.pid)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"train.py {' '.join(args)} timed out after {timeout:.0f} s") from None
    finally:
        kill_tree(proc)
    output = log.read_text(errors="replace")
    assert not leftover, f"processes of train.py {' '.join(args)} outlived it:\n{output[-3000:]}"
    return code, output


def group_alive(pid: int) -> bool:
    """Whether any process of the process group led by pid is still running (e.g. an orphaned DDP rank)."""
    try:
        os.killpg(pid, 0)
        return True
    except ProcessLookupError:
        return False
