"""Entry points started as processes without paying for their imports each time: a test-only process launcher.

`python train.py ...` spends about 4 s of a 2-core CPU importing torch, Lightning, Hydra and W&B before it does
anything, and the suite starts about a hundred such processes. A *zygote* (one per pytest worker) imports those
libraries once, runs nothing, and forks on request: the child sets its argv, environment, working directory and
output files, then runs the script as `python script.py` would (`__main__`, sys.path[0], exit status, atexit
handlers, KeyboardInterrupt ending in SIGINT). Each child is a real process with its own pid (signals, process
groups, exit codes, DDP ranks it launches), started in about 0.3 s instead of 4-7 s. The zygote imports no
project module that keeps per-process state, and never runs a torch op (no thread pools exist when it forks).

`spawn([sys.executable, "train.py", ...], env=..., cwd=..., stdout=path, stderr=path)` returns a Popen-like handle
(pid, poll, wait, send_signal, kill, returncode); other commands (`python -c`, `-m torch.distributed.run`) and
TFORMER_TEST_ZYGOTE=0 get a plain subprocess.Popen. Protocol on the zygote's stdin/stdout: one JSON request a
line; it answers {"pid": n} at once and {"exited": n, "code": c} when that child ends.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRELOAD = ("torch", "numpy", "omegaconf", "hydra", "lightning", "wandb", "tiktoken", "tokenizers", "rich", "yaml")


# --- the zygote process ------------------------------------------------------------------------------------------


def _preload() -> None:
    import logging

    from training.startup import lean_start  # as train.py's start does, before Lightning

    lean_start()
    # The entry points import Lightning once Hydra has set up logging: Lightning's loggers then hand their records
    # to the root logger's handlers instead of keeping a console handler of their own. Likewise here.
    placeholder = logging.NullHandler()
    logging.getLogger().addHandler(placeholder)
    for name in PRELOAD:
        __import__(name)
    logging.getLogger().removeHandler(placeholder)
    from hydra.core.plugins import Plugins

    Plugins.instance()  # Hydra's plugin scan, done once


def _child(request: dict) -> int:
    """In the forked child: become `python <script> <args>` and run it; the exit status."""
    import runpy
    import signal

    if request.get("new_session"):
        os.setsid()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL if sig != signal.SIGINT else signal.default_int_handler)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    _reset_process_state()
    script = request["argv"][0]
    sys.argv = list(request["argv"])
    sys.path[0] = str(Path(script).resolve().parent)
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else (print(code, file=sys.stderr) or 1))
    except KeyboardInterrupt:
        import traceback

        traceback.print_exc()
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # as CPython ends on an uncaught KeyboardInterrupt
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    return 0


def _reset_process_state() -> None:
    """What the preloaded libraries read from the environment when imported: read it again for this child."""
    import atexit
    import tempfile
    import weakref

    import torch
    from lightning.fabric.utilities import rank_zero
    from wandb.sdk.data_types._private import MEDIA_TMP

    # The zygote's temporary folders (wandb's media folder, ...) are not this child's to delete at its exit.
    for finalizer in list(weakref.finalize._registry):  # noqa: SLF001
        finalizer.atexit = False
    atexit.unregister(MEDIA_TMP.cleanup)
    tempfile.tempdir = None
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    rank_zero.rank_zero_only.rank = rank_zero._get_rank() or 0


def _finish() -> None:
    """Python's own exit: wait for non-daemon threads, run atexit handlers, flush."""
    import atexit

    threading._shutdown()  # noqa: SLF001 (what the interpreter calls at exit)
    atexit._run_exitfuncs()  # noqa: SLF001
    sys.stdout.flush()
    sys.stderr.flush()


def serve() -> None:
    _preload()
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    children: set[int] = set()
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.05)
        if ready:
            line = sys.stdin.readline()
            if not line:
                break  # the tests are done
            request = json.loads(line)
            out.flush()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = _child(request)
                    _finish()
                finally:
                    os._exit(code)
            children.add(pid)
            out.write(json.dumps({"pid": pid}) + "\n")
            out.flush()
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children.discard(pid)
            out.write(json.dumps({"exited": pid, "code": os.waitstatus_to_exitcode(status)}) + "\n")
            out.flush()


# --- the tests' side ---------------------------------------------------------------------------------------------


class Zygote:
    """A zygote process and a thread that reads its answers."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.zygote"], cwd=ROOT, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
        self.lock, self.cond = threading.Lock(), threading.Condition()
        self.codes: dict[int, int] = {}
        self.started: list[int] = []
        ready = json.loads(self.proc.stdout.readline())
        assert "ready" in ready, ready
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            message = json.loads(line)
            with self.cond:
                if "pid" in message:
                    self.started.append(message["pid"])
                else:
                    self.codes[message["exited"]] = message["code"]
                self.cond.notify_all()

    def start(self, argv: list[str], *, env: dict, cwd: Path, stdout: Path, stderr: Path, new_session: bool) -> int:
        request = {"argv": argv, "env": dict(env), "cwd": str(cwd), "stdout": str(stdout), "stderr": str(stderr),
                   "new_session": new_session}  # fmt: skip
        with self.lock, self.cond:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            self.cond.wait_for(lambda: self.started or self.proc.poll() is not None, timeout=60)
            assert self.started, "the test zygote did not start the process"
            return self.started.pop(0)

    def code(self, pid: int, timeout: float | None) -> int | None:
        with self.cond:
            self.cond.wait_for(lambda: pid in self.codes, timeout=timeout)
            return self.codes.get(pid)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class Forked:
    """The subprocess.Popen calls the tests use, for a process the zygote forked."""

    def __init__(self, zygote: Zygote, pid: int, args: list[str]):
        self.zygote, self.pid, self.args, self.returncode = zygote, pid, args, None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.code(self.pid, timeout=0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self.zygote.code(self.pid, timeout=timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        import signal

        self.send_signal(signal.SIGTERM)


_zygote: Zygote | None = None


def enabled() -> bool:
    return os.environ.get("TFORMER_TEST_ZYGOTE", "1") != "0"


def spawn(argv: list[str], *, env: dict, cwd: Path, stdout: Path, stderr: Path | None = None,
          new_session: bool = False):  # fmt: skip
    """`argv` ([sys.executable, script.py, args...]) as a process writing to the stdout and stderr files (stderr None:
    into stdout); forked from the zygote when it can be, else a plain subprocess."""
    global _zygote
    script = argv[1] if len(argv) > 1 and argv[0] == sys.executable else ""
    if not (enabled() and script.endswith(".py")):
        out = open(stdout, "a")  # noqa: SIM115 (the OS closes it with the process)
        err = subprocess.STDOUT if stderr is None else open(stderr, "a")  # noqa: SIM115
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=new_session)
    if _zygote is None or _zygote.proc.poll() is not None:
        _zygote = Zygote()
    pid = _zygote.start(argv[1:], env=env, cwd=cwd, stdout=stdout, stderr=stderr or stdout, new_session=new_session)
    return Forked(_zygote, pid, argv)


def run(argv: list[str], *, env: dict, cwd: Path, tmp: Path, timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run(argv, capture_output=True, text=True, timeout=...) through spawn()."""
    tmp.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.monotonic_ns()}"
    out, err = tmp / f"proc-{stamp}.out", tmp / f"proc-{stamp}.err"
    proc = spawn(argv, env=env, cwd=cwd, stdout=out, stderr=err, new_session=True)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        raise
    _kill_group(proc.pid)  # anything it left behind (DDP ranks)
    return subprocess.CompletedProcess(argv, code, out.read_text(errors="replace"), err.read_text(errors="replace"))


def _kill_group(pid: int) -> None:
    import signal

    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":
    serve()
