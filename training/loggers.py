"""The run's loggers: W&B (online with credentials, offline otherwise) and the local CSV metrics, always;
TensorBoard on request (logger=tensorboard, logger=many).

A resumed run continues its W&B run instead of starting a second one: the run id is written to
<run>/wandb_run_id and into every checkpoint (`tformer_wandb_run_id`), and a run started with ckpt_path=
hands it back to W&B (Lightning's WandbLogger resumes with resume="allow").
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig

from training.checkpoint import WANDB_ID_KEY
from training.private_api import drop_wandb_anonymous
from training.secrets import redacted_argv
from training.startup import skip_unstaged_launch_inputs

log = logging.getLogger("tformer")

WANDB_ID_FILE = "wandb_run_id"  # in the run directory (and WANDB_ID_KEY in checkpoints)


def wandb_entry(cfg: DictConfig) -> DictConfig | None:
    """cfg.logger's W&B logger entry, if it has one."""
    for entry in (cfg.get("logger") or {}).values():
        if isinstance(entry, DictConfig) and str(entry.get("_target_", "")).endswith("WandbLogger"):
            return entry
    return None


def start_wandb_service(cfg: DictConfig) -> threading.Thread | None:
    """Start W&B's service process now, in a thread, while the data and the model are set up: wandb.init starts
    it and waits for it otherwise (about 0.2 s of a 2-core start-up). wandb.init then connects to it (the same
    connection, made once; it waits for the thread if it is still starting). W&B reads its settings from the
    environment here, so an offline run sets WANDB_MODE=dryrun now, as Lightning's WandbLogger does before
    wandb.init. None when no W&B logger is configured or W&B is disabled (WANDB_MODE=disabled); a failure here is
    left for wandb.init to report."""
    entry = wandb_entry(cfg)
    if entry is None:
        return None
    if entry.get("offline"):
        os.environ["WANDB_MODE"] = "dryrun"
    from wandb.sdk import wandb_setup

    setup = wandb_setup.singleton()
    if setup.settings._noop:
        return None

    def start() -> None:
        try:
            setup.ensure_service()
        except Exception:  # noqa: BLE001 - wandb.init tries again and says what is wrong
            log.debug("W&B's service did not start ahead of wandb.init", exc_info=True)

    thread = threading.Thread(target=start, name="wandb-service-start", daemon=True)
    thread.start()
    return thread


def build_loggers(cfg: DictConfig, wandb_run_id: str | None = None) -> list[Logger]:
    """Every logger of cfg.logger (entries with a _target_), the W&B one continuing `wandb_run_id` (the resumed
    checkpoint's W&B run), and a CSV logger into <run>/csv when none is configured."""
    loggers: list[Logger] = []
    for entry in (cfg.get("logger") or {}).values():
        if not isinstance(entry, DictConfig) or "_target_" not in entry:
            continue  # options such as logger.watch
        extra = {}
        if wandb_run_id and entry._target_.endswith("WandbLogger"):
            extra["id"] = wandb_run_id
        logger = instantiate(entry, _convert_="all", **extra)
        if isinstance(logger, WandbLogger):
            drop_wandb_anonymous(logger)  # Lightning passes a setting wandb has deprecated (and warns about)
            skip_unstaged_launch_inputs()  # wandb.init without importing W&B Launch (training/startup.py)
            with redacted_argv():  # wandb.init now: the command line it records has its secrets redacted
                _ = logger.experiment
        loggers.append(logger)
    if not any(isinstance(lg, CSVLogger) for lg in loggers):
        loggers.append(CSVLogger(cfg.paths.output_dir, name="csv", version=""))
    return loggers


def wandb_logger(loggers: list[Logger]) -> WandbLogger | None:
    return next((lg for lg in loggers if isinstance(lg, WandbLogger)), None)


class WandbRunId(L.Callback):
    """Writes the W&B run id into <run>/wandb_run_id and into every checkpoint, so that a run resumed from
    one of them continues the same W&B run."""

    def __init__(self, output_dir: str):
        self.output_dir = Path(output_dir)

    @staticmethod
    def _run_id(trainer: L.Trainer) -> str | None:
        logger = wandb_logger(trainer.loggers)
        return logger.experiment.id if logger is not None else None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        run_id = self._run_id(trainer)
        if run_id and trainer.is_global_zero:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / WANDB_ID_FILE).write_text(run_id + "\n")

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        run_id = self._run_id(trainer)
        if run_id:
            checkpoint[WANDB_ID_KEY] = run_id


def watch(loggers: list[Logger], module: L.LightningModule, cfg: DictConfig) -> None:
    """logger.watch=gradients|parameters|all: W&B logs histograms of the model's gradients / weights."""
    what = (cfg.get("logger") or {}).get("watch")
    logger = wandb_logger(loggers)
    if what and logger is not None:
        logger.watch(module, log=what, log_freq=int(cfg.trainer.get("log_every_n_steps", 50)))


def announce_wandb(loggers: list[Logger]) -> None:
    """One line on where the W&B run is (conf/logger/wandb.yaml keeps W&B's own console output quiet)."""
    logger = wandb_logger(loggers)
    if logger is None:
        return
    if logger._offline:
        run_dir = Path(logger.experiment.dir).parent
        log.info("W&B is offline (no credentials): `wandb sync %s` uploads it later", run_dir)
    else:
        log.info("W&B run: %s", logger.experiment.url)


def finish_wandb(loggers: list[Logger]) -> None:
    if wandb_logger(loggers) is not None:
        import wandb

        wandb.finish()
