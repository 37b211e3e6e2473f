"""Plain `ddp` that works from a Hydra run *and* a Hydra multirun.

Lightning's `ddp` launcher starts the extra ranks by re-running `sys.argv`. Under `python train.py -m ...`
that makes every extra rank start its own copy of the whole sweep (Lightning dropped its multirun support for
this reason). `HydraJobLauncher` starts the extra ranks with exactly the current job instead:

    python train.py <this job's overrides> hydra.mode=RUN hydra.run.dir=<this job's dir> hydra.output_subdir=null

so they join the job that rank zero is running, in that job's output directory. It waits for them when the job
ends (or kills them when it fails), and `job_scope()` tears the process group down and restores the environment
variables the launch set (LOCAL_RANK, MASTER_PORT, ...) so that the next job of the sweep starts a fresh group
on a fresh port. Processes started by something else (torchrun, SLURM's srun) are left alone: Lightning's
cluster environments handle them and nothing is launched here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from training.config import env_rank_is_zero  # noqa: F401  (where tools and tests look for it)
from training.private_api import (
    SAFE_LAUNCHERS,
    SubprocessScriptLauncher,
    get_args_parser,
    replace_launcher,
    set_num_threads_if_needed,
    unknown_launcher_error,
)
from training.secrets import redact_override

log = logging.getLogger("tformer")

# What Lightning's launch writes into os.environ of the rank-zero process (and torch reads back).
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "OMP_NUM_THREADS")
# Hydra overrides that belong to the sweep, not to the job an extra rank must join.
_SWEEP_ONLY = ("hydra.mode", "hydra.run.", "hydra.sweep.", "hydra.sweeper", "hydra/sweeper", "hydra.launcher",
               "hydra/launcher", "hydra.output_subdir", "hydra.job.name", "hydra.job.num", "hydra.job.id")  # fmt: skip


def _quote(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"'


def job_command(argv: list[str] | None = None) -> tuple[list[str], str]:
    """The command (and working directory) that re-runs exactly the current Hydra job as a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd, to_absolute_path

    import __main__

    argv = list(sys.argv if argv is None else argv)
    hc = HydraConfig.get()
    if getattr(__main__, "__spec__", None) is None:
        command = [sys.executable, to_absolute_path(argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    args, _ = get_args_parser().parse_known_args(argv[1:])
    for flag, value in (("--config-path", args.config_path), ("--config-name", args.config_name),
                        ("--config-dir", args.config_dir)):  # fmt: skip
        if value:
            command += [flag, value]
    command += list(hc.overrides.task)
    command += [o for o in hc.overrides.hydra if not o.lstrip("+~").startswith(_SWEEP_ONLY)]
    command += ["hydra.mode=RUN", f"hydra.run.dir={_quote(hc.runtime.output_dir)}", "hydra.output_subdir=null"]
    return command, get_original_cwd()


class _RankWatcher(threading.Thread):
    """Watches the extra ranks; when one dies with an error, kills the others (rank zero then fails in its next
    collective and the job is recorded as failed) instead of killing the whole sweep as Lightning's observer does."""

    def __init__(self, procs: list[subprocess.Popen], period: float = 0.5):
        super().__init__(daemon=True, name="tformer-rank-watcher")
        self.procs, self.period, self.stopped = procs, period, threading.Event()
        self.failure: str | None = None

    def run(self) -> None:
        while not self.stopped.wait(self.period):
            codes = [p.poll() for p in self.procs]
            bad = [(i + 1, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if bad:
                self.failure = ", ".join(f"local rank {r} exited with code {c}" for r, c in bad)
                log.error("DDP: %s; stopping the other ranks of this job", self.failure)
                _kill(self.procs)
                return
            if all(c == 0 for c in codes):
                return


def _is_timeout(exc: BaseException) -> bool:
    """Whether a collective operation gave up waiting (gloo: "Timed out waiting ...", NCCL: "... timeout")."""
    return bool(re.search(r"timed out|timeout", str(exc), re.IGNORECASE))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _process_state(pid: int) -> str:
    """`stopped` (SIGSTOP, a debugger), `running`, `sleeping`, ... from /proc (Linux); `alive` elsewhere."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "alive"
    return {"T": "stopped", "t": "stopped", "R": "running", "S": "sleeping", "D": "in uninterruptible I/O"}.get(
        state, f"state {state}"
    )


def _stuck_ranks(procs: list[subprocess.Popen]) -> str | None:
    """The extra ranks still alive, with their process state: `local rank 1 (pid 123, stopped)`."""
    alive = [(i + 1, p.pid) for i, p in enumerate(procs) if p.poll() is None]
    return ", ".join(f"local rank {r} (pid {pid}, {_process_state(pid)})" for r, pid in alive) or None


def _kill(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)  # SIGTERM does not stop a rank that hangs in a collective
    for p in procs:
        with contextlib.suppress(Exception):
            p.wait(timeout=30)


class HydraJobLauncher(SubprocessScriptLauncher):
    """Lightning's subprocess launcher, made to start the extra ranks on the current Hydra job only."""

    join_timeout_s: float = 300.0

    def launch(self, function: Callable, *args: Any, trainer=None, **kwargs: Any) -> Any:
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if self.cluster_environment.creates_processes_externally:
            set_num_threads_if_needed(num_processes=self.num_processes)
            return function(*args, **kwargs)
        self._call_children_scripts()
        watcher = _RankWatcher(self.procs)
        watcher.start()
        set_num_threads_if_needed(num_processes=self.num_processes)
        try:
            result = function(*args, **kwargs)
        except BaseException as exc:
            watcher.stopped.set()
            stuck = _stuck_ranks(self.procs) if isinstance(exc, Exception) and _is_timeout(exc) else None
            died = None if stuck else self._died_first()
            _kill(self.procs)
            if stuck:  # a rank alive but not answering: rank zero gave up waiting for it
                raise RuntimeError(
                    f"DDP: {stuck} did not take part in a collective operation within the process-group timeout "
                    f"(trainer.strategy.timeout); the run is stopped and its ranks killed. Rank zero's error: "
                    f"{_first_line(exc)}"
                ) from exc
            if died and isinstance(exc, Exception):  # rank zero only saw the broken connection: name the cause
                raise RuntimeError(f"DDP: {died} (see its error above); rank zero then failed with: {exc}") from exc
            raise
        watcher.stopped.set()
        self._join(watcher)
        return result

    def _died_first(self, grace_s: float = 10.0) -> str | None:
        """Which extra ranks exited with an error on their own (waiting briefly: they may be exiting now)."""
        deadline = time.monotonic() + grace_s
        while True:
            bad = [f"local rank {i + 1} exited with code {p.poll()}" for i, p in enumerate(self.procs) if p.poll()]
            if bad or time.monotonic() > deadline:
                return "; ".join(bad) or None
            time.sleep(0.1)

    def _join(self, watcher: _RankWatcher) -> None:
        try:
            codes = [p.wait(timeout=self.join_timeout_s) for p in self.procs]
        except subprocess.TimeoutExpired:
            _kill(self.procs)
            msg = f"DDP: extra ranks did not exit within {self.join_timeout_s:.0f} s of rank zero"
            raise RuntimeError(msg) from None
        failed = [f"local rank {i + 1} exited with code {c}" for i, c in enumerate(codes) if c != 0]
        if failed or watcher.failure:
            raise RuntimeError("DDP: " + "; ".join(failed or [watcher.failure]))

    def _call_children_scripts(self) -> None:
        self._check_can_spawn_children()
        self.procs = []
        os.environ["MASTER_ADDR"] = self.cluster_environment.main_address
        os.environ["MASTER_PORT"] = str(self.cluster_environment.main_port)
        os.environ["NODE_RANK"] = str(self.cluster_environment.node_rank())
        os.environ["LOCAL_RANK"] = str(self.cluster_environment.local_rank())
        os.environ["WORLD_SIZE"] = f"{self.num_processes * self.num_nodes}"
        command, cwd = job_command()
        shown = " ".join(redact_override(a) for a in command[1:])
        log.info("DDP: starting %d more rank(s) on this job: %s", self.num_processes - 1, shown)
        for local_rank in range(1, self.num_processes):
            env = {**os.environ, "LOCAL_RANK": str(local_rank)}
            self.procs.append(subprocess.Popen(command, env=env, cwd=cwd))


def attach(trainer, batch_size: int | None = None) -> None:
    """Swap Lightning's script launcher for HydraJobLauncher (when Hydra runs this process), fail loudly on a
    launcher this project does not know, and log the effective batch size of a distributed run."""
    from hydra.core.hydra_config import HydraConfig

    launcher = trainer.strategy.launcher
    if HydraConfig.initialized() and launcher is not None and not isinstance(launcher, HydraJobLauncher):
        if type(launcher) is SubprocessScriptLauncher:
            job_launcher = HydraJobLauncher(launcher.cluster_environment, launcher.num_processes, launcher.num_nodes)
            replace_launcher(trainer.strategy, job_launcher)
        elif not isinstance(launcher, SAFE_LAUNCHERS):
            raise unknown_launcher_error(launcher)
    if trainer.world_size > 1 and batch_size and trainer.is_global_zero:
        accumulate = trainer.accumulate_grad_batches
        log.info(
            "Distributed: %d processes (%d node(s)); each rank draws its own batches, so the effective batch is "
            "data.batch_size x processes x accumulate_grad_batches = %d x %d x %d = %d sequences per step",
            trainer.world_size,
            trainer.num_nodes,
            batch_size,
            trainer.world_size,
            accumulate,
            batch_size * trainer.world_size * accumulate,
        )


@contextlib.contextmanager
def job_scope() -> Iterator[None]:
    """Leave no distributed state behind a job: destroy the process group, restore the launch environment
    variables and torch's thread count, so that the next job of a multirun starts clean."""
    saved = {key: os.environ.get(key) for key in LAUNCH_ENV}
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            with contextlib.suppress(Exception):
                torch.distributed.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        torch.set_num_threads(threads)
