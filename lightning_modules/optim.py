"""Optimizers (AdamW, Adam, SGD; Muon with AdamW in lightning_modules/muon.py) over decay / no-decay parameter
groups and the learning-rate schedules shared by the LightningModules. Every schedule is a factor of each group's
peak lr per optimizer step (a LambdaLR stepped after each optimizer step), so it works the same with endless data
and with epochs."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
from torch import nn

from errors import ConfigError


@dataclass
class OptimConfig:
    lr: float = 1e-3
    min_lr: float = 1e-4
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    warmup_steps: int = 100
    decay_steps: int | None = None  # None: the trainer's max_steps
    schedule: str = "cosine"  # cosine | constant | inverse_sqrt | step
    grad_clip: float = 1.0  # 0 disables clipping
    name: str = "adamw"  # adamw (decoupled decay) | adam (coupled L2 decay, torch.optim.Adam) | sgd
    momentum: float = 0.0  # sgd only
    step_size: int | None = None  # schedule=step: optimizer steps between two decays by `gamma` (StepLR)
    gamma: float = 0.1  # schedule=step: the decay factor (torch StepLR's default)
    # name=muon: torch.optim.Muon on the hidden matrices (its own peak lr), AdamW (lr, betas, ...) on the rest
    muon_lr: float = 0.05
    muon_momentum: float = 0.95
    muon_weight_decay: float = 0.0  # decoupled, as torch applies it: w -= muon_lr(t) * muon_weight_decay * w
    muon_adjust_lr: str = "original"  # original (Keller Jordan's, the speedrun's) | match_rms_adamw (Moonshot's)

    def __post_init__(self) -> None:
        """Every field checked on construction, each error naming its `optim.<field>` override."""
        numbers = ("lr", "min_lr", "weight_decay", "beta1", "beta2", "eps", "grad_clip")
        for name in (*numbers, "muon_lr", "muon_momentum", "muon_weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ConfigError(f"optim.{name}={value!r} must be a number")
        for name in ("warmup_steps", "decay_steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ConfigError(f"optim.{name}={value!r} must be an integer")
        checks = (
            ("lr", self.lr > 0, "must be > 0"),
            # only cosine decays to min_lr: a constant lr below the default min_lr (fine-tuning) is no error
            (
                "min_lr",
                0 <= self.min_lr and (self.schedule != "cosine" or self.min_lr <= self.lr),
                f"must be in [0, optim.lr={self.lr}]",
            ),
            ("beta1", 0 <= self.beta1 < 1, "must be in [0, 1)"),
            ("beta2", 0 <= self.beta2 < 1, "must be in [0, 1)"),
            ("eps", self.eps > 0, "must be > 0"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("grad_clip", self.grad_clip >= 0, "must be > 0 (the gradient norm's limit) or 0 (no clipping)"),
            ("warmup_steps", self.warmup_steps >= 0, "must be >= 0"),
            ("decay_steps", self.decay_steps is None or self.decay_steps > 0, "must be > 0 (or null: max_steps)"),
            ("muon_lr", self.muon_lr > 0, "must be > 0"),
            ("muon_momentum", 0 <= self.muon_momentum < 1, "must be in [0, 1)"),
            ("muon_weight_decay", self.muon_weight_decay >= 0, "must be >= 0"),
        )
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"optim.{name}={getattr(self, name)} {rule}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule={self.schedule!r} is unknown; choose one of {sorted(SCHEDULES)}")
        check_optimizer_choice(self)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices (Linear, Embedding weights), none on biases and norm gains.

    Decided by module type, not by p.dim(): under FSDP (trainer=fsdp) the optimizer sees 1-D parameter shards.
    """
    matrices = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding))}
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    decay = [p for p in params.values() if id(p) in matrices]
    no_decay = [p for p in params.values() if id(p) not in matrices]
    return [  # named: Lightning's LearningRateMonitor logs train/lr/decay and train/lr/no_decay
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]


OPTIMIZERS = ("adamw", "adam", "sgd", "muon")
MUON_ADJUST_LR = ("original", "match_rms_adamw")  # torch.optim.Muon's adjust_lr_fn


def check_optimizer_choice(cfg: OptimConfig) -> None:
    """optim.name and the step schedule's fields."""
    if cfg.name not in OPTIMIZERS:
        raise ConfigError(f"optim.name={cfg.name!r} is unknown; choose one of {OPTIMIZERS}")
    if cfg.muon_adjust_lr not in MUON_ADJUST_LR:
        raise ConfigError(f"optim.muon_adjust_lr={cfg.muon_adjust_lr!r} is unknown; choose one of {MUON_ADJUST_LR}")
    if cfg.name == "muon" and not hasattr(torch.optim, "Muon"):
        raise ConfigError(f"optim.name=muon needs torch >= 2.9 (torch.optim.Muon); this is torch {torch.__version__}")
    if cfg.momentum < 0:
        raise ConfigError(f"optim.momentum must be >= 0, got {cfg.momentum}")
    if cfg.schedule == "step":
        if not isinstance(cfg.step_size, int) or isinstance(cfg.step_size, bool) or cfg.step_size <= 0:
            raise ConfigError(
                f"optim.schedule=step needs optim.step_size, a positive number of optimizer steps between decays "
                f"(got {cfg.step_size!r}); for a decay per epoch, set it to the steps of one epoch"
            )
        if not 0.0 < cfg.gamma <= 1.0:
            raise ConfigError(f"optim.gamma must be in (0, 1], got {cfg.gamma}")


def make_optimizer(model: nn.Module, cfg: OptimConfig, *, device_type: str) -> torch.optim.Optimizer:
    """The optimizer of optim.name over decay / no-decay groups: AdamW and Adam fused on CUDA, SGD as torch's.

    Adam's weight_decay is the coupled L2 term of torch.optim.Adam (the translation tutorials use none).
    """
    if cfg.name == "adamw":
        return make_adamw(model, cfg, device_type=device_type)
    if cfg.name == "muon":
        from lightning_modules.muon import make_muon

        return make_muon(model, cfg, device_type=device_type)
    groups = param_groups(model, cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.Adam(
        groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, **_fused(torch.optim.Adam, device_type)
    )


def _fused(optimizer: type, device_type: str) -> dict:
    """fused=True on CUDA where the optimizer has a fused kernel."""
    return {"fused": True} if device_type == "cuda" and "fused" in inspect.signature(optimizer).parameters else {}


def make_adamw(model: nn.Module, cfg: OptimConfig, *, device_type: str) -> torch.optim.AdamW:
    """AdamW over decay / no-decay groups, fused on CUDA."""
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), **adamw_settings(cfg, device_type))


def adamw_settings(cfg: OptimConfig, device_type: str) -> dict:
    """AdamW's arguments from optim.*: lr, betas, eps, and fused on CUDA."""
    return dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, **_fused(torch.optim.AdamW, device_type))


def cosine_factor(step: int, *, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to min_ratio at `total`, flat afterwards."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if step >= total:
        return min_ratio
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + 0.5 * (1.0 + math.cos(math.pi * progress)) * (1.0 - min_ratio)


def inverse_sqrt_factor(step: int, *, warmup: int) -> float:
    """The Transformer paper's schedule, normalised to peak at 1 after `warmup` steps."""
    step = step + 1
    warmup = max(1, warmup)
    return min(step / warmup, math.sqrt(warmup / step))


def step_factor(step: int, *, warmup: int, step_size: int, gamma: float) -> float:
    """torch's StepLR counted in optimizer steps: gamma ** (step // step_size), after an optional linear warmup."""
    return min(1.0, (step + 1) / (warmup + 1)) * gamma ** (step // step_size)


SCHEDULES = {"cosine", "constant", "inverse_sqrt", "step"}


@dataclass
class Schedule:
    """The LR multiplier of each optimizer step (LambdaLR's lr_lambda).

    A callable object rather than a closure: LambdaLR saves the fields of such objects with its state, so a
    resumed run continues the schedule it was started with (its kind, warmup and length), whatever
    trainer.max_steps the resumed run is given.
    """

    kind: str  # cosine | constant | inverse_sqrt | step
    warmup: int
    total: int  # cosine: the step where the decay reaches min_ratio
    min_ratio: float
    step_size: int = 0  # step: optimizer steps between two decays by gamma
    gamma: float = 0.1

    def __call__(self, step: int) -> float:
        if self.kind == "cosine":
            return cosine_factor(step, warmup=self.warmup, total=self.total, min_ratio=self.min_ratio)
        if self.kind == "inverse_sqrt":
            return inverse_sqrt_factor(step, warmup=self.warmup)
        if self.kind == "step":
            return step_factor(step, warmup=self.warmup, step_size=self.step_size, gamma=self.gamma)
        return min(1.0, (step + 1) / (self.warmup + 1))

    def describe(self) -> str:
        if self.kind == "step":
            return f"step, warmup {self.warmup}, x {self.gamma:g} every {self.step_size} steps"
        return f"{self.kind}, warmup {self.warmup}, decay over {self.total} steps to {self.min_ratio:g} x lr"


def lr_lambda(cfg: OptimConfig, total_steps: int) -> Schedule:
    """Multiplier of cfg.lr as a function of the optimizer step (for LambdaLR)."""
    return Schedule(cfg.schedule, cfg.warmup_steps, cfg.decay_steps or total_steps, cfg.min_lr / cfg.lr,
                    step_size=cfg.step_size or 0, gamma=cfg.gamma)  # fmt: skip
