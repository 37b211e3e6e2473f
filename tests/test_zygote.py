"""tests/zygote.py: a forked entry point behaves as `python script.py` would (argv, env, cwd, output, exit status,
signals), and the libraries' state read at import is read again for each child."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from tests import zygote

SCRIPT = """
import os, sys, time
print("argv", sys.argv[1:], "cwd", os.getcwd(), "env", os.environ.get("ZYGOTE_PROBE"), "path0", sys.path[0])
print("to stderr", file=sys.stderr)
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
print("threads", torch.get_num_threads(), "rank", rank_zero_only.rank, "name", __name__)
mode = sys.argv[1]
if mode == "exit":
    sys.exit(int(sys.argv[2]))
if mode == "raise":
    raise ValueError("a bug")
if mode == "sleep":
    print("sleeping", flush=True)
    time.sleep(60)
"""

pytestmark = pytest.mark.slow  # starts a zygote (imports torch, Lightning, Hydra, W&B: seconds)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text(SCRIPT)
    return path


def run(script, tmp_path, *args, **env):
    full = {**os.environ, "ZYGOTE_PROBE": "yes", "OMP_NUM_THREADS": "1", "LOCAL_RANK": "0", **env}
    return zygote.run([sys.executable, str(script), *args], env=full, cwd=tmp_path, tmp=tmp_path / "p", timeout=60)


def test_a_child_runs_the_script_as_python_would(script, tmp_path):
    proc = run(script, tmp_path, "exit", "3", OMP_NUM_THREADS="2", LOCAL_RANK="1")
    assert proc.returncode == 3 and proc.stderr == "to stderr\n"
    assert f"argv ['exit', '3'] cwd {tmp_path} env yes path0 {tmp_path}" in proc.stdout
    assert "threads 2 rank 1 name __main__" in proc.stdout  # read again from this child's environment
    proc = run(script, tmp_path, "exit", "0")
    assert proc.returncode == 0 and "threads 1 rank 0" in proc.stdout


def test_an_uncaught_exception_exits_1_with_its_traceback(script, tmp_path):
    proc = run(script, tmp_path, "raise")
    assert proc.returncode == 1 and "ValueError: a bug" in proc.stderr and "Traceback" in proc.stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, -signal.SIGINT)])
def test_signals_reach_the_child_with_default_handling(script, tmp_path, sig, code):
    log = tmp_path / "sleep.log"
    log.write_text("")
    proc = zygote.spawn([sys.executable, str(script), "sleep"], env={**os.environ, "OMP_NUM_THREADS": "1"},
                        cwd=tmp_path, stdout=log, new_session=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while "sleeping" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.getpgid(proc.pid) == proc.pid  # its own session: a process group to kill with all it started
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == code  # SIGINT: KeyboardInterrupt, then ended by SIGINT as CPython does
