"""Helpers for the distributed and sweep tests: process trees that never outlive a test, W&B offline files."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], *, env: dict, log: Path) -> subprocess.Popen:
    """Start cmd in its own process group (so that it and every rank it starts can be killed together)."""
    out = open(log, "w")  # noqa: SIM115 (closed by the OS when the process exits; the test reads it after)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


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


def wandb_records(run_file: Path):
    """The protobuf records of a W&B run file (run-<id>.wandb, LevelDB log format), without a W&B server."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", f"{run_file} is not a W&B run file"
    block, pos, chunks = 32768, 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the rest of a block too small for a header is padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            chunks = b""
            yield record
        elif kind == 0:
            break


def wandb_run_info(run_dir: Path) -> dict:
    """group, name, tags and exit code of the offline W&B run under run_dir (a train.py output dir)."""
    (run_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    info: dict = {"exit_code": None}
    for r in wandb_records(run_file):
        if r.HasField("run"):
            info.update(group=r.run.run_group, name=r.run.display_name, tags=list(r.run.tags))
        elif r.HasField("exit"):
            info["exit_code"] = r.exit.exit_code
    return info


def group_alive(pid: int) -> bool:
    """Whether any process of the process group led by pid is still running (e.g. an orphaned DDP rank)."""
    try:
        os.killpg(pid, 0)
        return True
    except ProcessLookupError:
        return False
