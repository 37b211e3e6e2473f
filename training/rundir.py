"""Run directories: one per run, never shared, never taken over by a run that does not resume it.

Directory names end in a random suffix (conf/hydra/default.yaml: `<date>_<time>_<run_suffix>`), so runs started
in the same second get their own. A run whose directory is given (`hydra.run.dir=...`, `hydra.sweep.dir=...`)
is refused when the directory already holds another run (its `config.yaml` or `checkpoints/`; a multirun's
`multirun.yaml`), unless the run resumes from a checkpoint inside it; `RunDirGuard` checks this before Hydra
writes anything there. Processes that join a run as extra ranks (DDP, torchrun, srun) are not checked: they
share rank zero's directory.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from errors import UserError
from training.cli import fail
from training.secrets import redact

log = logging.getLogger("tformer")

RUN_MARKERS = ("config.yaml", "checkpoints")
METRICS = Path("csv") / "metrics.csv"


def slurm_requeued(run_dir: Path) -> bool:
    """A SLURM job that Lightning requeued (SIGUSR1: `hpc_ckpt_<n>.ckpt` saved in the run directory, which
    trainer.default_root_dir is): Lightning resumes from that checkpoint in the same directory. SLURM detected as
    Lightning detects it (srun / sbatch, not an interactive `bash` job)."""
    in_slurm = "SLURM_NTASKS" in os.environ and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")
    return in_slurm and any(Path(run_dir).glob("hpc_ckpt_*.ckpt"))


def resumes_in(run_dir: Path, ckpt_path: str | None) -> bool:
    """Whether the run continues in run_dir: ckpt_path is a checkpoint inside it, or Lightning's SLURM requeue."""
    if not ckpt_path:
        return slurm_requeued(run_dir)
    return Path(str(ckpt_path)).expanduser().resolve().is_relative_to(Path(run_dir).resolve())


def check_run_dir(run_dir: Path, ckpt_path: str | None = None, *, field: str = "hydra.run.dir") -> None:
    """Refuse a directory that already holds another run, unless this run resumes from a checkpoint in it."""
    found = [name for name in RUN_MARKERS if (run_dir / name).exists()]
    if found and not resumes_in(run_dir, ckpt_path):
        raise UserError(
            f"{field}={run_dir} already holds another run ({', '.join(found)}): nothing was written. Leave "
            f"{field} unset for a new directory, pick another one, or resume that run with "
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"
        )


class RunDirGuard(Callback):
    """Hydra callback: checks the run (or multirun) directory before Hydra creates it or writes .hydra/ there,
    and exits with one line when it holds another run (Hydra would turn an exception here into a warning)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from training.distributed import env_rank_is_zero

        if env_rank_is_zero():
            try:
                check_run_dir(Path(str(config.hydra.run.dir)), OmegaConf.select(config, "ckpt_path"))
            except UserError as err:
                fail(str(err))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if (sweep_dir / "multirun.yaml").exists():
            fail(
                f"hydra.sweep.dir={sweep_dir} already holds another multirun (multirun.yaml): nothing was written. "
                f"Leave hydra.sweep.dir unset for a new directory, or pick another one"
            )


def save_config(cfg: DictConfig, out: Path) -> Path:
    """Write <out>/config.yaml (the resolved config), claiming the directory: a run that finds one there that
    it does not resume (another run started in the same directory at the same time) stops with nothing written."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.yaml"
    in_place = resumes_in(out, cfg.get("ckpt_path"))
    try:
        with open(path, "w" if in_place else "x", encoding="utf-8") as f:
            f.write(OmegaConf.to_yaml(OmegaConf.create(redact(OmegaConf.to_container(cfg, resolve=True)))))
    except FileExistsError:
        raise UserError(f"{out} already holds another run's config.yaml (started at the same time?): stopped") from None
    return path


def keep_earlier_metrics(out: Path, ckpt_path: str | None) -> Path | None:
    """A run resumed in its own directory: move the earlier csv/metrics.csv aside (Lightning's CSV logger would
    delete it) as csv/metrics.<k>.csv, the first free k."""
    old = out / METRICS
    if not resumes_in(out, ckpt_path) or not old.is_file():
        return None
    k = 1
    while (kept := old.with_name(f"metrics.{k}.csv")).exists():
        k += 1
    os.replace(old, kept)
    log.info("Resuming in %s: the earlier metrics are kept in %s", out, kept)
    return kept
