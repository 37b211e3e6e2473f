"""Checks of a composed config that run before any work: the model config, and model and data that fit."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError

from errors import ConfigError

log = logging.getLogger("tformer")


def build_model_config(cfg: DictConfig):
    """Instantiate (and so validate) the model config before any data work."""
    check_model_fields(cfg.model)
    try:
        return instantiate(cfg.model, _convert_="all")
    except InterpolationKeyError as err:
        # Model configs take their lengths from the data config (${data.block_size}, ${data.max_len}).
        raise ConfigError(
            f"model={cfg.model.get('name')} does not fit data={cfg.data.get('name')} ({err}): GPT models train on "
            f"language-model corpora (e.g. data=shakespeare_char), seq2seq models on parallel corpora "
            f"(e.g. data=multi30k)"
        ) from err


def check_model_fields(model_cfg: DictConfig) -> None:
    """Every key of the model config is a field of its config class (a GPT option given to the seq2seq model, say)."""
    try:
        cls = get_class(model_cfg.get("_target_"))
    except Exception:  # instantiate names a bad target
        return
    if not dataclasses.is_dataclass(cls):
        return
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in model_cfg if k not in known and k != "_target_"]
    if unknown:
        raise ConfigError(f"model.{unknown[0]} is not an option of {cls.__name__}; its options: {', '.join(known)}")


def check_block_sizes(model_cfg, data_block: int) -> None:
    if data_block > model_cfg.block_size:
        raise ConfigError(
            f"data.block_size={data_block} is larger than the model's context model.block_size="
            f"{model_cfg.block_size}: lower data.block_size or raise model.block_size"
        )


def check_lengths(model_cfg, data_cfg) -> None:
    """The data's longest sequence must fit the model's positions (GPT block_size, seq2seq max_len)."""
    if hasattr(model_cfg, "block_size") and "block_size" in data_cfg:
        check_block_sizes(model_cfg, data_cfg.block_size)
    if hasattr(model_cfg, "max_len") and "max_len" in data_cfg and data_cfg.max_len > model_cfg.max_len:
        raise ConfigError(
            f"data.max_len={data_cfg.max_len} is larger than the model's model.max_len={model_cfg.max_len}: "
            f"lower data.max_len or raise model.max_len"
        )


def check_data_family(datamodule, family: str, cfg: DictConfig) -> None:
    """A GPT needs a language-model corpus, a seq2seq model a parallel corpus."""
    data_family = getattr(datamodule, "family", "gpt")
    if data_family != family:
        raise ConfigError(
            f"data={cfg.data.get('name')} is a corpus for {data_family} models, but model={cfg.model.get('name')} "
            f"is a {family} model: pick a matching pair (e.g. model=gpt_small data=shakespeare_char, "
            f"or model=seq2seq_small data=multi30k)"
        )


# --- everything checkable before any data work ------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(field: str, value, *, minimum: int, hint: str = "") -> None:
    if not _is_int(value) or value < minimum:
        rule = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{field}={value!r} must be {rule}{hint}")


def check_seed(value, field: str = "seed") -> None:
    if value is not None and not _is_int(value):
        raise ConfigError(f"{field}={value!r} must be an integer (or null for a random seed)")


def check_data_sizes(data_cfg) -> None:
    """The data's sizes, named as the data's (model.block_size follows data.block_size: checked here first)."""
    for key in ("batch_size", "block_size", "max_len", "max_tokens"):
        if data_cfg.get(key) is not None:
            check_int(f"data.{key}", data_cfg[key], minimum=1)


def check_sampling(options, *, prefix: str = "", min_samples: int = 1) -> None:
    """Sampling options (sample.py's, or train.py's sample.*): counts, temperature, top-k/top-p and seed."""
    check_int(f"{prefix}num_samples", options["num_samples"], minimum=min_samples)
    check_int(f"{prefix}max_new_tokens", options["max_new_tokens"], minimum=1)
    temperature, top_k, top_p = options.get("temperature"), options.get("top_k"), options.get("top_p")
    if not _is_number(temperature) or temperature < 0:
        raise ConfigError(f"{prefix}temperature={temperature!r} must be a number >= 0 (0: always the likeliest token)")
    if top_k is not None and (not _is_int(top_k) or top_k < 1):
        raise ConfigError(f"{prefix}top_k={top_k!r} must be a positive integer (or null: no top-k filter)")
    if top_p is not None and (not _is_number(top_p) or not 0 < top_p <= 1):
        raise ConfigError(f"{prefix}top_p={top_p!r} must be in (0, 1] (or null: no nucleus filter)")
    if "seed" in options:
        check_seed(options["seed"], f"{prefix}seed")


def check_optim(optim_cfg):
    """The optimizer settings as the LightningModule will build them (every field checked by OptimConfig)."""
    from dataclasses import fields

    from lightning_modules.optim import OptimConfig

    values = OmegaConf.to_container(optim_cfg, resolve=True)
    known = [f.name for f in fields(OptimConfig)]
    unknown = [key for key in values if key not in known]
    if unknown:
        raise ConfigError(f"optim.{unknown[0]} is not an optimizer setting; known: {', '.join(known)}")
    return OptimConfig(**values)


def check_optim_strategy(optim, trainer_cfg) -> None:
    """Muon orthogonalises whole weight matrices; FSDP hands the optimizer flattened 1-D shards of them."""
    strategy = trainer_cfg.get("strategy") or ""
    target = strategy if isinstance(strategy, str) else str(strategy.get("_target_", ""))
    if optim.name == "muon" and "fsdp" in target.lower():
        raise ConfigError(
            f"optim.name=muon cannot train under trainer.strategy={target}: Muon needs whole weight matrices and "
            f"FSDP gives the optimizer flattened shards; use trainer=ddp with Muon, or optim.name=adamw with FSDP"
        )


# A GPT trains on an endless stream of random windows: an epoch never ends, only max_steps stops it.
ENDLESS_FAMILIES = ("gpt",)


def check_steps(trainer_cfg, optim, family: str) -> None:
    """trainer.max_steps: something to train, an end to the run, a warmup that fits in it."""
    steps = trainer_cfg.get("max_steps", -1)
    check_int("trainer.max_steps", steps, minimum=-1)
    if steps == 0:
        raise ConfigError("trainer.max_steps=0: nothing to train; set the number of optimizer steps (e.g. 5000)")
    if steps == -1:
        epochs = trainer_cfg.get("max_epochs")
        if family in ENDLESS_FAMILIES:
            raise ConfigError(
                f"trainer.max_steps=-1 would train forever: a {family} model trains on an endless stream of "
                f"random windows; set trainer.max_steps to the number of optimizer steps (e.g. 5000)"
            )
        if not _is_int(epochs) or epochs <= 0:
            raise ConfigError(
                "trainer.max_steps=-1 with no trainer.max_epochs has no end (Lightning would run 1000 epochs); "
                "set trainer.max_steps (optimizer steps) or trainer.max_epochs"
            )
        return
    if optim.warmup_steps > steps:
        log.warning(
            "optim.warmup_steps=%d is longer than the run (trainer.max_steps=%d): the learning rate never reaches "
            "optim.lr=%g; lower optim.warmup_steps for a full schedule",
            optim.warmup_steps,
            steps,
            optim.lr,
        )


def check_backend(model_cfg, trainer_cfg) -> None:
    """model.attention=flash runs on CUDA GPUs in half precision only: say so now, not at the first forward."""
    if getattr(model_cfg, "attention", None) != "flash":
        return
    import torch

    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    if accelerator == "cpu" or not torch.cuda.is_available():
        where = "trainer.accelerator=cpu" if accelerator == "cpu" else "no CUDA GPU found"
        raise ConfigError(
            f"model.attention=flash needs a CUDA GPU with flash-attention kernels ({where}); use "
            f"model.attention=sdpa (picks the best available kernel) or model.attention=math"
        )
    precision = str(trainer_cfg.get("precision"))
    if not precision.startswith(("16", "bf16")):
        raise ConfigError(
            f"model.attention=flash needs half precision, got trainer.precision={precision}: use "
            f"trainer.precision=bf16-mixed (or 16-mixed), or model.attention=sdpa"
        )


# Arguments of every LightningModule that train.py passes itself (not module.* options).
MODULE_ARGS = ("self", "model", "tokenizer", "optim", "compile")


def check_module_options(options, module_cls) -> None:
    """module.* are keyword arguments of the family's LightningModule: an unknown one is named with the known ones."""
    import inspect

    params = inspect.signature(module_cls.__init__).parameters
    known = [name for name in params if name not in MODULE_ARGS]
    for key in options or {}:
        if key not in known:
            raise ConfigError(
                f"module.{key} is not an option of the {module_cls.family} LightningModule ({module_cls.__name__}); "
                f"its options: {', '.join(known) or 'none'}"
            )


# Model fields a resumed run may change: they shape no parameter.
RESUMABLE_CHANGES = ("dropout", "attention", "name")


def check_resumed_sizes(saved: dict, model_cfg, path: str, *, fields: tuple[str, ...] | None = None) -> None:
    """The checkpoint's model sizes (its saved hyperparameters) against this run's model config."""
    now = model_cfg.to_dict()
    keys = fields or [k for k in saved if k in now and k not in RESUMABLE_CHANGES and k != "vocab_size"]
    differ = [k for k in keys if saved.get(k) != now.get(k)]
    if differ:
        had = ", ".join(f"model.{k}={saved.get(k)!r}" for k in differ)
        asked = ", ".join(f"model.{k}={now.get(k)!r}" for k in differ)
        raise ConfigError(
            f"ckpt_path={path}: the checkpoint has {had}, but this run has {asked}: resume with the checkpoint's "
            f"sizes (drop the overrides that change them), or train a new model without ckpt_path"
        )


@dataclass(frozen=True)
class Resumed:
    """What a run resumed from a checkpoint needs from it before fit: its model fields and its W&B run id."""

    model: dict
    wandb_run_id: str | None = None


def check_resume(ckpt: dict, model_cfg, trainer_cfg, path: str) -> Resumed:
    """A resumed run must fit the checkpoint's sizes and have steps left."""
    from training.checkpoint import WANDB_ID_KEY

    saved = dict((ckpt.get("hyper_parameters") or {}).get("model") or {})
    check_resumed_sizes(saved, model_cfg, path)
    done, steps = int(ckpt.get("global_step", 0)), trainer_cfg.get("max_steps", -1)
    if 0 < steps <= done:
        raise ConfigError(
            f"trainer.max_steps={steps} but ckpt_path={path} has already trained {done} steps: nothing left to "
            f"train; raise trainer.max_steps above {done} to train on"
        )
    return Resumed(model=saved, wandb_run_id=ckpt.get(WANDB_ID_KEY))


def check_resumed_optimizer(ckpt: dict, optim, path: str) -> None:
    """A checkpoint's optimizer state fits only the optimizer that wrote it (optim.name; older runs: adamw)."""
    saved = ((ckpt.get("hyper_parameters") or {}).get("optim") or {}).get("name", "adamw")
    if saved != optim.name:
        raise ConfigError(
            f"ckpt_path={path} was trained with optim.name={saved}, but this run has optim.name={optim.name}: "
            f"resume with optim.name={saved}, or start a new run (no ckpt_path) to train with {optim.name}"
        )


def check_run(cfg: DictConfig):
    """Every check that needs no data, before any work: -> (model config, LightningModule class, Resumed or
    None)."""
    from training.checkpoint import check_family, read_checkpoint
    from training.families import module_for_config

    check_seed(cfg.get("seed"))
    check_data_sizes(cfg.data)
    model_cfg = build_model_config(cfg)  # built and validated once
    module_cls = module_for_config(model_cfg)
    optim = check_optim(cfg.optim)
    check_steps(cfg.trainer, optim, module_cls.family)
    check_optim_strategy(optim, cfg.trainer)
    check_backend(model_cfg, cfg.trainer)
    if cfg.get("sample") is not None:
        check_sampling(cfg.sample, prefix="sample.", min_samples=0)
    check_lengths(model_cfg, cfg.data)
    check_module_options(cfg.get("module"), module_cls)
    saved = None
    if cfg.get("ckpt_path"):
        from training.resume import announce

        ckpt = read_checkpoint(cfg.ckpt_path)
        check_family(ckpt, module_cls.family, path=cfg.ckpt_path)
        # budget.flops sets trainer.max_steps once the data is known (training/budget.py): no steps to compare yet
        budget = OmegaConf.select(cfg, "budget.flops", default=None) is not None
        saved = check_resume(ckpt, model_cfg, {"max_steps": -1} if budget else cfg.trainer, str(cfg.ckpt_path))
        check_resumed_optimizer(ckpt, optim, str(cfg.ckpt_path))
        announce(ckpt, str(cfg.ckpt_path))
    return model_cfg, module_cls, saved
