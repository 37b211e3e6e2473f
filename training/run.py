"""One training run, from a composed config to checkpoints, metrics and samples."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities.model_helpers import is_overridden
from omegaconf import DictConfig, OmegaConf

from training import distributed
from training.budget import apply_budget
from training.checkpoint_io import use_atomic_checkpoints
from training.checks import check_data_family, check_resumed_sizes, check_run
from training.config import loggable
from training.console import config_tree, model_label, outputs_summary, quiet_libraries
from training.duration import check_cpu_duration
from training.guards import guard_callbacks
from training.loggers import (
    WandbRunId,
    announce_wandb,
    build_loggers,
    finish_wandb,
    start_wandb_service,
    wandb_logger,
    watch,
)
from training.rundir import keep_earlier_metrics, save_config
from training.startup import frozen_start_up

log = logging.getLogger("tformer")


def train(cfg: DictConfig) -> float | None:
    """Train per cfg; return the best val/loss (what sweepers minimise)."""
    quiet_libraries()
    out = Path(cfg.paths.output_dir)
    log.info("Run directory: %s", out.resolve())
    # Config, model config (validated), optimizer, steps, resumed checkpoint: before any data work.
    model_cfg, module_cls, resumed = check_run(cfg)
    if distributed.env_rank_is_zero():
        start_wandb_service(cfg)  # in the background while the data and the model are set up
    L.seed_everything(cfg.seed, workers=True)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")

    datamodule = _datamodule(cfg)
    check_data_family(datamodule, module_cls.family, cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model_cfg = with_vocabularies(model_cfg, datamodule)
    if resumed is not None:
        sizes = ("vocab_size", "src_vocab_size", "tgt_vocab_size")
        check_resumed_sizes(resumed.model, model_cfg, str(cfg.ckpt_path), fields=sizes)
    apply_budget(cfg, model_cfg, module_cls.family)  # budget.flops: trainer.max_steps from the budget
    params = model_cfg.num_params() / 1e6
    log.info("Model %s: %.2fM parameters; %s", model_label(model_cfg), params, vocabularies(model_cfg))
    if distributed.env_rank_is_zero():
        log.info("%s", config_tree(cfg))
        check_cpu_duration(cfg, model_cfg)  # above an hour on a CPU: only with long_cpu_run=true or a yes

    module = module_cls(
        model=model_cfg,
        tokenizer=datamodule.tokenizer.state_dict(),
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        compile=bool(cfg.compile),
        **OmegaConf.to_container(cfg.get("module") or OmegaConf.create({}), resolve=True),
    )
    loggers = build_loggers(cfg, wandb_run_id=resumed.wandb_run_id if resumed else None)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    callbacks += guard_callbacks()  # stop on a non-finite loss or a signal; checkpoints keep the run's overrides
    if wandb_logger(loggers) is not None:
        callbacks.append(WandbRunId(cfg.paths.output_dir))
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers, callbacks=callbacks)
    distributed.attach(trainer, batch_size=cfg.data.get("batch_size"))  # ddp that also works under -m
    use_atomic_checkpoints(trainer)  # temporary file beside the checkpoint, then rename: never half a file
    if trainer.is_global_zero:
        save_config(cfg, out)  # claims the directory: stops if another run got there first
        keep_earlier_metrics(out, cfg.get("ckpt_path"))
        for lg in loggers:
            lg.log_hyperparams(loggable(cfg))
        announce_wandb(loggers)
        watch(loggers, module, cfg)

    with frozen_start_up():  # the collector back on, never again walking what start-up built
        return fit_and_test(cfg, trainer, module, datamodule, loggers)


def fit_and_test(cfg: DictConfig, trainer: L.Trainer, module, datamodule, loggers) -> float | None:
    """Train, score the test split where the family has a test step, name the checkpoints, close W&B; return the
    best val/loss."""
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    ckpt = trainer.checkpoint_callback
    best = ckpt.best_model_score if ckpt is not None else None
    if cfg.get("test_after_fit", True) and is_overridden("test_step", module) and getattr(datamodule, "has_test", True):
        # Families with a test step (seq2seq: beam-search BLEU) score the test split with the best weights.
        best_path = ckpt.best_model_path if ckpt is not None else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best_path or None)
    if trainer.is_global_zero:
        out = Path(cfg.paths.output_dir)
        if ckpt is not None:
            log_checkpoints(ckpt, out, best)
        log.info("%s", outputs_summary(out))
    finish_wandb(loggers)
    return float(best) if best is not None else None


def with_vocabularies(model_cfg, datamodule):
    """The final model config: the data's vocabulary sizes, known once its tokenizer is (a seq2seq model may have
    separate source and target ones), through dataclasses.replace, which validates the config again."""
    sizes = {"vocab_size": datamodule.vocab_size}
    for field in ("src_vocab_size", "tgt_vocab_size"):
        if getattr(datamodule, field, None) is not None:
            sizes[field] = getattr(datamodule, field)
    return dataclasses.replace(model_cfg, **sizes)


def vocabularies(model_cfg) -> str:
    """The model's vocabulary sizes in words: one joint vocabulary, or a seq2seq's separate source and target ones."""
    src, tgt = getattr(model_cfg, "src_vocab_size", None), getattr(model_cfg, "tgt_vocab_size", None)
    if src is None and tgt is None:
        return f"vocabulary {model_cfg.vocab_size:,}"
    return f"source vocabulary {src or model_cfg.vocab_size:,}, target vocabulary {tgt or model_cfg.vocab_size:,}"


def log_checkpoints(ckpt, out: Path, best) -> None:
    """Name this run's best and last checkpoints; a best one restored from a resumed run is named as such."""
    if ckpt.best_model_path and Path(ckpt.best_model_path).resolve().is_relative_to(out.resolve()):
        log.info("Best checkpoint: %s (%s %s)", ckpt.best_model_path, ckpt.monitor, _fmt(best))
    elif ckpt.best_model_path:
        log.info("Best checkpoint: none saved by this run (the resumed run's best: %s)", ckpt.best_model_path)
    log.info("Last checkpoint: %s", ckpt.last_model_path)


# Keys of a data config that describe the data to the rest of the config, not arguments of its DataModule.
DATA_CONFIG_ONLY = ("name", "use_distributed_sampler")


def _datamodule(cfg: DictConfig) -> L.LightningDataModule:
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if k not in DATA_CONFIG_ONLY}
    return instantiate(kwargs)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{float(x):.4f}"
