"""Multirun jobs: W&B group/name/tags per job, failure isolation, status files and a sweep summary.

`run_job(cfg, train)` is what train.py runs for every job:
- in a multirun (`python train.py -m ...`) the job's W&B run joins the sweep's group (`logger.wandb.group`,
  by default the multirun directory's name), is named after the job's overrides and tagged with its sizes;
- a job that raises is recorded as failed (`<job dir>/status.json` with the reason, an error log line, its W&B
  run finished as failed) and returns `multirun.failed_value` to the sweeper, so the other jobs still run;
- a plain single run (and any non-zero rank) re-raises: it exits non-zero as before;
- a job stopped by a signal (training/signals.RunStopped: SIGTERM, SIGUSR1, Ctrl-C) is recorded as `terminated`,
  the sweep's summary is written at once and the process exits with 128 + the signal: the scheduler's stop ends
  the sweep, which a requeue continues job by job (each job's last.ckpt).
`SweepSummary` (a Hydra callback) collects the jobs' status files into `<multirun dir>/summary.csv`; a multirun
in which every job failed then exits with status 1.
"""

from __future__ import annotations

import csv
import gc
import json
import logging
import shutil
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from training.secrets import redact_override, redact_text

log = logging.getLogger("tformer")

STATUS_FILE = "status.json"
SUMMARY_FILE = "summary.csv"
# Sizes every multirun job carries as W&B tags (the full config is logged too).
SIZE_KEYS = ("data.batch_size", "data.block_size", "model.n_embd", "model.n_head", "model.n_layer")


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def size_tags(cfg: DictConfig) -> list[str]:
    tags = []
    for key in SIZE_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            tags.append(f"{key.split('.')[-1]}={value}")
    return tags


def swept_overrides(argv: list[str] | None = None) -> list[str]:
    """This job's values of the swept keys (`a=1,2` on the command line or hydra.sweeper.params), e.g.
    ["model.n_layer=4"]: what tells the jobs of a sweep apart."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from training.private_api import get_args_parser

    hc = HydraConfig.get()
    parser = OverridesParser.create()
    args, _ = get_args_parser().parse_known_args((sys.argv if argv is None else argv)[1:])
    swept = {o.key_or_group for o in parser.parse_overrides(args.overrides or []) if o.is_sweep_override()}
    swept |= {str(k) for k in (OmegaConf.select(hc, "sweeper.params") or {})}
    job = parser.parse_overrides(list(hc.overrides.task))
    return [o.input_line for o in job if o.key_or_group in swept]


def label_wandb_run(cfg: DictConfig) -> None:
    """Group, name and tag this multirun job's W&B run (in place, before the loggers are built)."""
    wandb_cfg = OmegaConf.select(cfg, "logger.wandb")
    if wandb_cfg is None or not in_multirun():
        return
    hc = HydraConfig.get()
    if not wandb_cfg.get("group"):
        wandb_cfg.group = Path(hc.sweep.dir).name
    try:
        job = ",".join(swept_overrides())
    except Exception:  # an override only a full config loader can parse (glob over a group): use them all
        job = ""
    job = redact_text(job or hc.job.override_dirname or f"job{hc.job.num}")
    wandb_cfg.name = f"{wandb_cfg.name}-{job}" if wandb_cfg.get("name") else job
    tags = [*(wandb_cfg.get("tags") or []), *size_tags(cfg)]
    wandb_cfg.tags = list(dict.fromkeys(str(t)[:64] for t in tags))


def finish_wandb(*, failed: bool, reason: str | None = None, exit_code: int | None = None) -> None:
    """Close the active W&B run (if any), marked failed with its reason when the job failed."""
    if "wandb" not in sys.modules:
        return
    import wandb

    if wandb.run is None:
        return
    if failed and reason:
        wandb.run.summary["failure"] = reason[:1000]
    wandb.finish(exit_code=exit_code if exit_code is not None else 1 if failed else 0)


def _reason(exc: BaseException) -> str:
    """One line naming the error; a config class's own error rather than Hydra's wrapper around it."""
    from training.cli import root_cause

    exc = root_cause(exc)
    return f"{type(exc).__name__}: {exc}"


def write_status(out_dir: Path, status: str, **fields: Any) -> Path:
    hc = HydraConfig.get()
    record = {
        "status": status,
        "job": int(hc.job.num) if hc.job.get("num") is not None else None,
        "overrides": [redact_override(o) for o in hc.overrides.task],
        "output_dir": str(out_dir),
        **fields,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / STATUS_FILE
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


def _free_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_job(cfg: DictConfig, train: Callable[[DictConfig], float | None]) -> float | None:
    """Run one job; in a multirun a failing job is recorded and reported to the sweeper instead of raised."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException  # Lightning's own stop: a SystemExit(None)

    from training.distributed import env_rank_is_zero, job_scope
    from training.signals import RunStopped, stop_on_signals

    multirun = in_multirun() and env_rank_is_zero()
    keep_going = multirun and bool(OmegaConf.select(cfg, "multirun.continue_on_failure", default=True))
    label_wandb_run(cfg)
    out = Path(cfg.paths.output_dir)
    error = None
    with job_scope(), stop_on_signals():
        try:
            value = train(cfg)
        except (RunStopped, SIGTERMException, KeyboardInterrupt) as exc:
            signum = signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM
            stop = exc if isinstance(exc, RunStopped) else RunStopped(signum)
            report_stop(stop, out, multirun)
            raise stop from None
        except Exception as exc:
            reason = _reason(exc)
            finish_wandb(failed=True, reason=reason)
            if not keep_going:
                if not multirun and env_rank_is_zero():
                    remove_unclaimed(out, exc)
                raise
            error = {"error": reason, "traceback": traceback.format_exc()}
    if error is not None:
        path = write_status(out, "failed", val_loss=None, **error)
        log.error("Job failed, the sweep goes on: %s (recorded in %s)", error["error"], path)
        _free_memory()
        failed_value = OmegaConf.select(cfg, "multirun.failed_value", default=float("inf"))
        return None if failed_value is None else float(failed_value)
    if multirun:
        write_status(out, "completed", val_loss=value)
    return value


def report_stop(stop, out: Path, multirun: bool) -> None:
    """A run stopped by a signal: say where its checkpoint is and how to resume; in a multirun, mark the job
    terminated and write the sweep's summary now (the sweep ends here)."""
    from training.distributed import env_rank_is_zero

    message = stop.describe()
    finish_wandb(failed=True, reason=message, exit_code=stop.code)
    if not env_rank_is_zero():
        return
    log.warning("%s", message)
    if multirun:
        fields = {"signal": stop.signal_name, "step": stop.step, "checkpoint": stop.checkpoint}
        write_status(out, "terminated", val_loss=None, error=message, **fields)
        sweep_dir = Path(HydraConfig.get().sweep.dir)
        write_summary(sweep_dir)
        log.warning("Multirun stopped by %s during job %s: the jobs after it did not run; summary in %s",
                    stop.signal_name, HydraConfig.get().job.get("num"), sweep_dir / SUMMARY_FILE)  # fmt: skip


def remove_unclaimed(out: Path, exc: BaseException) -> None:
    """A single run that failed its checks before claiming its directory (config.yaml) leaves no directory behind:
    only what Hydra wrote there (.hydra/, the log file) is removed, and only for a user error."""
    from training.cli import user_error_message

    if user_error_message(exc) is None or not out.is_dir() or (out / "config.yaml").exists():
        return
    hydra_only = {".hydra", "train.log"}
    if all(p.name in hydra_only for p in out.iterdir()):
        shutil.rmtree(out, ignore_errors=True)


def read_statuses(sweep_dir: Path) -> list[dict]:
    rows = [json.loads(p.read_text()) for p in Path(sweep_dir).glob(f"*/{STATUS_FILE}")]
    return sorted(rows, key=lambda r: (r.get("job") is None, r.get("job") or 0))


def write_summary(sweep_dir: Path) -> list[dict]:
    """<multirun dir>/summary.csv from the jobs' status files (job, status, val_loss, overrides, error)."""
    rows = read_statuses(sweep_dir)
    if rows:
        with open(sweep_dir / SUMMARY_FILE, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["job", "status", "val_loss", "overrides", "error"])
            for r in rows:
                overrides = " ".join(r["overrides"])
                writer.writerow([r.get("job"), r["status"], r.get("val_loss"), overrides, r.get("error")])
    return rows


class SweepSummary(Callback):
    """At the end of a multirun, write <multirun dir>/summary.csv (job, status, val_loss, overrides, error),
    log how many jobs finished or failed and which one was best, and exit with status 1 when every job failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = write_summary(sweep_dir)
        if not rows:
            return
        done = [r for r in rows if r["status"] == "completed" and r.get("val_loss") is not None]
        failed = [r for r in rows if r["status"] == "failed"]
        log.info("Multirun: %d job(s), %d completed, %d failed; summary in %s", len(rows), len(rows) - len(failed),
                 len(failed), sweep_dir / SUMMARY_FILE)  # fmt: skip
        for r in failed:
            log.warning("  job %s failed (%s): %s", r.get("job"), " ".join(r["overrides"]), r.get("error"))
        if done:
            best = min(done, key=lambda r: r["val_loss"])
            log.info("  best val/loss %.4f: job %s (%s)", best["val_loss"], best["job"], " ".join(best["overrides"]))
        if len(failed) == len(rows):
            log.error("Multirun: every job failed (%d of %d); see %s", len(failed), len(rows), sweep_dir / SUMMARY_FILE)
            raise SystemExit(1)  # nothing trained: the sweep fails (with some jobs done it exits 0, as before)
