"""One training run, from a composed config to checkpoints, metrics and samples."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities.model_helpers import is_overridden
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError

from lab import cpu_estimate, distributed
from lab.checkpoint import check_family, read_checkpoint
from lab.config import loggable
from lab.families import family_of, module_class

log = logging.getLogger("tformer")


def build_model_config(cfg: DictConfig):
    """Instantiate (and so validate) the model config before any data work."""
    try:
        return instantiate(cfg.model, _convert_="all")
    except InterpolationKeyError as err:
        # Model configs take their lengths from the data config (${data.block_size}, ${data.max_len}).
        raise ValueError(
            f"model={cfg.model.get('name')} does not fit data={cfg.data.get('name')} ({err}): GPT models train on "
            f"language-model corpora (e.g. data=shakespeare_char), seq2seq models on parallel corpora "
            f"(e.g. data=multi30k)"
        ) from err


def check_block_sizes(model_cfg, data_block: int) -> None:
    if data_block > model_cfg.block_size:
        raise ValueError(
            f"data.block_size={data_block} is larger than the model's context model.block_size="
            f"{model_cfg.block_size}: lower data.block_size or raise model.block_size"
        )


def check_lengths(model_cfg, data_cfg) -> None:
    """The data's longest sequence must fit the model's positions (GPT block_size, seq2seq max_len)."""
    if hasattr(model_cfg, "block_size") and "block_size" in data_cfg:
        check_block_sizes(model_cfg, data_cfg.block_size)
    if hasattr(model_cfg, "max_len") and "max_len" in data_cfg and data_cfg.max_len > model_cfg.max_len:
        raise ValueError(
            f"data.max_len={data_cfg.max_len} is larger than the model's model.max_len={model_cfg.max_len}: "
            f"lower data.max_len or raise model.max_len"
        )


def check_data_family(datamodule, family: str, cfg: DictConfig) -> None:
    """A GPT needs a language-model corpus, a seq2seq model a parallel corpus."""
    data_family = getattr(datamodule, "family", "gpt")
    if data_family != family:
        raise ValueError(
            f"data={cfg.data.get('name')} is a corpus for {data_family} models, but model={cfg.model.get('name')} "
            f"is a {family} model: pick a matching pair (e.g. model=gpt_small data=shakespeare_char, "
            f"or model=seq2seq_small data=multi30k)"
        )


def build_loggers(cfg: DictConfig) -> list[Logger]:
    loggers: list[Logger] = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    if not any(type(lg).__name__ == "CSVLogger" for lg in loggers):
        from lightning.pytorch.loggers import CSVLogger

        loggers.append(CSVLogger(cfg.paths.output_dir, name="csv", version=""))
    return loggers


def announce_wandb(loggers: list[Logger]) -> None:
    for lg in loggers:
        if isinstance(lg, WandbLogger) and lg._offline:
            run_dir = Path(lg.experiment.dir).parent
            log.info("W&B is offline (no credentials). Upload this run later with: wandb sync %s", run_dir)


def warn_cpu_duration(cfg: DictConfig, model_cfg) -> None:
    if torch.cuda.is_available() or not cfg.get("cpu_time_check", True):
        return
    steps = int(cfg.trainer.max_steps)
    if steps <= 0:
        return
    if "max_tokens" in cfg.data:  # token-budget batches (translation)
        tokens, seq, batch = int(cfg.data.max_tokens), int(cfg.data.max_len), f"<= {cfg.data.max_tokens} tokens"
        hint = "Lower trainer.max_steps or train on a GPU (docs/translation.md)."
    else:
        tokens, seq = int(cfg.data.batch_size) * int(cfg.data.block_size), int(cfg.data.block_size)
        batch = f"batch {cfg.data.batch_size} x block {cfg.data.block_size}"
        hint = "For a CPU-sized run use: python train.py experiment=shakespeare_char_cpu"
    seconds = cpu_estimate.estimate_seconds(model_cfg.flops_per_token(seq), tokens, steps)
    log.warning(
        "No GPU found: %d steps of %s (%s) will take roughly %s on this CPU. %s",
        steps,
        model_cfg.name,
        batch,
        cpu_estimate.human(seconds),
        hint,
    )


def train(cfg: DictConfig) -> float | None:
    """Train per cfg; return the best val/loss (what sweepers minimise)."""
    out = Path(cfg.paths.output_dir)
    log.info("Run directory: %s", out.resolve())
    model_cfg = build_model_config(cfg)
    family = family_of(model_cfg)
    if cfg.get("ckpt_path"):
        check_family(read_checkpoint(cfg.ckpt_path), family, path=cfg.ckpt_path)
    L.seed_everything(cfg.seed, workers=True)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")

    check_lengths(model_cfg, cfg.data)
    datamodule = _datamodule(cfg)
    check_data_family(datamodule, family, cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model_cfg = replace(model_cfg, vocab_size=datamodule.vocab_size)
    log.info("Model %s: %.2fM parameters", model_cfg.name, model_cfg.num_params() / 1e6)

    module = module_class(family)(
        model=model_cfg.to_dict(),
        tokenizer=datamodule.tokenizer.state_dict(),
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        compile=bool(cfg.compile),
        **OmegaConf.to_container(cfg.get("module") or OmegaConf.create({}), resolve=True),
    )
    loggers = build_loggers(cfg)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers, callbacks=callbacks)
    distributed.attach(trainer, batch_size=cfg.data.get("batch_size"))  # ddp that also works under -m
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, out / "config.yaml", resolve=True)
        for lg in loggers:
            lg.log_hyperparams(loggable(cfg))
        announce_wandb(loggers)
        warn_cpu_duration(cfg, model_cfg)

    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    ckpt = trainer.checkpoint_callback
    best = ckpt.best_model_score if ckpt is not None else None
    if cfg.get("test_after_fit", True) and is_overridden("test_step", module) and getattr(datamodule, "has_test", True):
        # Families with a test step (seq2seq: beam-search BLEU) score the test split with the best weights.
        best_path = ckpt.best_model_path if ckpt is not None else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best_path or None)
    if trainer.is_global_zero:
        if ckpt is not None:
            log.info("Best checkpoint: %s (%s %s)", ckpt.best_model_path, ckpt.monitor, _fmt(best))
            log.info("Last checkpoint: %s", ckpt.last_model_path)
        log.info("Outputs: %s", out.resolve())
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            import wandb

            wandb.finish()
    return float(best) if best is not None else None


def _datamodule(cfg: DictConfig) -> L.LightningDataModule:
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if k != "name"}
    return instantiate(kwargs)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{float(x):.4f}"
