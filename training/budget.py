"""A compute budget as the run length: `budget.flops=3e13` sets trainer.max_steps (docs/scaling.md).

steps = floor(budget.flops / (FLOPs per token x tokens per optimizer step)), with the model's own
`flops_per_token(block_size)` (6·N + 12·L·T·C) and tokens per step = batch x block x devices x nodes x
accumulation. The LR schedule spans trainer.max_steps, so it follows. What the run chose is written into the
config (config.yaml, W&B) as `budget.chosen` and said in the log.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from omegaconf import DictConfig, open_dict

from errors import ConfigError

log = logging.getLogger("tformer")


@dataclass(frozen=True)
class BudgetPlan:
    """What a budget buys this model: its steps and tokens, and the FLOPs they cost (at most the budget)."""

    steps: int
    tokens: int  # tokens trained on: steps x tokens_per_step (the D of a scaling law)
    tokens_per_step: int
    world_size: int
    flops_per_token: int
    flops: float  # FLOPs the run spends: flops_per_token x tokens (the budget rounded down to whole steps)
    params: int  # every parameter (the tied head once)
    non_embedding_params: int  # without the token and position embeddings


def world_size(trainer_cfg) -> int:
    """Processes that each train on their own batch: devices x nodes, from the trainer config as Lightning reads
    it ("auto" / -1: every CUDA GPU when the run goes to GPUs, one process on a CPU)."""
    import torch

    devices, nodes = trainer_cfg.get("devices", 1), int(trainer_cfg.get("num_nodes", 1) or 1)
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if devices in ("auto", -1):
        gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
        count = torch.cuda.device_count() if gpu else 1
    elif isinstance(devices, int):
        count = devices
    elif isinstance(devices, str):  # "0,1": these GPUs
        count = len([d for d in devices.split(",") if d.strip()])
    else:  # a list of device indices
        count = len(devices)
    return max(1, count) * nodes


def _max_steps_given() -> str | None:
    """A trainer.max_steps given on the command line (Hydra's overrides of this job), or None."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    for override in HydraConfig.get().overrides.task:
        if str(override).split("=", 1)[0].lstrip("+~") == "trainer.max_steps":
            return str(override)
    return None


def plan_budget(flops: float, model_cfg, *, batch_size: int, block_size: int, world: int = 1,
                accumulate: int = 1) -> BudgetPlan:  # fmt: skip
    """The steps a budget of `flops` buys a model training on batches of batch_size x block_size tokens."""
    per_token = int(model_cfg.flops_per_token(block_size))
    per_step = batch_size * block_size * world * accumulate
    steps = int(flops // (per_token * per_step))
    if steps < 1:
        raise ConfigError(
            f"budget.flops={flops:.3g} is less than one optimizer step of this model ({per_token:,} FLOPs per token x "
            f"{per_step:,} tokens per step = {per_token * per_step:.3g} FLOPs): raise budget.flops, or train a "
            f"smaller model or batch"
        )
    tokens = steps * per_step
    return BudgetPlan(
        steps=steps,
        tokens=tokens,
        tokens_per_step=per_step,
        world_size=world,
        flops_per_token=per_token,
        flops=float(per_token * tokens),
        params=int(model_cfg.num_params()),
        non_embedding_params=int(model_cfg.num_params(non_embedding=True)),
    )


def apply_budget(cfg: DictConfig, model_cfg, family: str) -> BudgetPlan | None:
    """With budget.flops set: trainer.max_steps from the budget (the config files' max_steps is replaced; one
    given on the command line beside the budget is an error), budget.chosen recorded, the choice logged.
    Call it once the vocabulary is known (it counts in the FLOPs) and before the module and trainer are built."""
    from training.checks import check_optim, check_steps

    flops = (cfg.get("budget") or {}).get("flops")
    if flops is None:
        return None
    if isinstance(flops, bool) or not isinstance(flops, (int, float)) or flops <= 0:
        raise ConfigError(f"budget.flops={flops!r} must be a positive number of FLOPs (e.g. budget.flops=3e13) or null")
    given = _max_steps_given()
    if given is not None:
        raise ConfigError(
            f"budget.flops={flops:.3g} sets trainer.max_steps itself, but {given} was given too: drop one of them"
        )
    if cfg.data.get("batch_size") is None or cfg.data.get("block_size") is None or family != "gpt":
        raise ConfigError(
            f"budget.flops needs batches of data.batch_size x data.block_size tokens (a GPT on a text corpus); "
            f"data={cfg.data.get('name')} with model={cfg.model.get('name')} does not have them: set "
            f"trainer.max_steps instead"
        )
    accumulate = int(cfg.trainer.get("accumulate_grad_batches", 1) or 1)
    batch, block, world = int(cfg.data.batch_size), int(cfg.data.block_size), world_size(cfg.trainer)
    plan = plan_budget(float(flops), model_cfg, batch_size=batch, block_size=block, world=world, accumulate=accumulate)
    before = cfg.trainer.get("max_steps")
    with open_dict(cfg):
        cfg.trainer.max_steps = plan.steps
        cfg.budget.chosen = asdict(plan)
    log.info(
        "budget.flops=%.3g: %s steps x %s tokens = %s tokens (%.1f per parameter), %.4g FLOPs at %s FLOPs per token; "
        "%.3fM parameters (%.3fM without embeddings); replaces trainer.max_steps=%s of the config",
        flops, f"{plan.steps:,}", f"{plan.tokens_per_step:,}", f"{plan.tokens:,}", plan.tokens / plan.params,
        plan.flops, f"{plan.flops_per_token:,}", plan.params / 1e6, plan.non_embedding_params / 1e6, before,
    )  # fmt: skip
    check_steps(cfg.trainer, check_optim(cfg.optim), family)  # a warmup longer than the budget's run is said
    return plan
