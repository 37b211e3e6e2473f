"""What every family's LightningModule shares: optimizer (optim.name) + schedule, clipping, the checkpoint format."""

from __future__ import annotations

import copy
import logging
import math
import sys

import lightning as L
import torch
from torch.optim.lr_scheduler import LambdaLR

from errors import ConfigError
from lightning_modules import checkpoint_format
from lightning_modules.optim import OptimConfig, Schedule, lr_lambda, make_optimizer

log = logging.getLogger("tformer")
DEFAULT_TOTAL_STEPS = 10_000  # schedule length when the trainer gives none (no trainer, endless data)


class TformerModule(L.LightningModule):
    """Subclasses set `family` (the checkpoint tag) and `config_class` (the model config they train), and build
    `self.config`, `self.model` (plain torch) and `self.optim_cfg` (OptimConfig)."""

    family: str
    config_class: type
    model: torch.nn.Module
    optim_cfg: OptimConfig
    _resumed_rng: dict | None = None  # the RNG state of the checkpoint being resumed, set at the first batch
    _planned: Schedule | None = None  # the schedule this run's config asks for (a resume keeps the saved one)

    def __init__(self):
        super().__init__()
        self._step_logs: dict[str, list] = {}  # name -> [sum, batches, reduce, prog_bar] of this optimizer step
        self.progress_bar_keys: dict[str, None] = {}  # log_step names shown by the progress bar (ordered set)
        self._logs_now = True  # whether this optimizer step's values go to self.log (on_before_optimizer_step)

    def log_step(self, name: str, value: torch.Tensor, *, reduce: str = "mean", prog_bar: bool = False) -> None:
        """Log `name` once per optimizer step (training_step calls this): the mean or sum over the batches the
        step accumulates (trainer.accumulate_grad_batches), at the step's number."""
        entry = self._step_logs.setdefault(name, [0.0, 0, reduce, prog_bar])
        entry[0] = entry[0] + value.detach().float()
        entry[1] += 1

    def on_before_optimizer_step(self, optimizer) -> None:
        # self.log costs about a millisecond of host time per call (Lightning's result collection), more than a
        # whole step of a small model on a GPU: so the step's values go to self.log only on the steps Lightning
        # writes to the loggers (every trainer.log_every_n_steps), and on the last step (for the progress bar's last
        # line; Lightning writes it to the loggers only when it falls on their cadence).
        # Nor is any of them a Lightning progress-bar metric: Lightning reads those off the device (.item(), a
        # host sync) after every batch; StepProgressBar reads `progress_bar_keys` when it redraws instead.
        trainer = self._trainer
        last = trainer is not None and 0 < trainer.max_steps <= trainer.global_step + 1  # the bar's last line
        self._logs_now = trainer is not None and (logs_this_step(trainer) or last)
        if self._logs_now:
            for name, (total, batches, reduce, prog_bar) in self._step_logs.items():
                value = total / batches if reduce == "mean" else total
                self.log(name, value, on_step=True, on_epoch=False)
                if prog_bar:
                    self.progress_bar_keys[name] = None
        self._step_logs = {}  # the learning rate: StepLearningRateMonitor (conf/callbacks)

    def schedule_steps(self) -> int:
        """Optimizer steps the LR schedule spans: trainer.max_steps, else the steps of max_epochs."""
        trainer = self._trainer
        if trainer is None:
            return DEFAULT_TOTAL_STEPS
        if trainer.max_steps > 0:
            return trainer.max_steps
        steps = trainer.estimated_stepping_batches
        return int(steps) if math.isfinite(steps) else DEFAULT_TOTAL_STEPS

    def configure_optimizers(self):
        optimizer = make_optimizer(self.model, self.optim_cfg, device_type=self.device.type)
        schedule = lr_lambda(self.optim_cfg, self.schedule_steps())
        self._planned = copy.copy(schedule)
        scheduler = LambdaLR(optimizer, schedule)
        # named: LearningRateMonitor (conf/callbacks) logs the rate as train/lr/<param group>
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "train/lr"},
        }

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip the whole gradient to norm optim.grad_clip and log its norm before clipping (train/grad_norm).

        Lightning's own clipping (Trainer(gradient_clip_val=...)) refuses fused AdamW under 16-mixed and FSDP's
        norm clipping, so this hook does it for every strategy and precision:
        - 16-mixed: Lightning unscales the gradients before this hook, except for optimizers that unscale inside
          step() (fused AdamW, the CUDA default). Those are unscaled here, so the norm is the true one; GradScaler
          then sees the optimizer as unscaled and hands the fused kernel no scale (no second unscale).
        - FSDP: each rank holds a shard; the root FSDP module's clip_grad_norm_ reduces the norm over all shards.
        - fp32, bf16-mixed, DDP (gradients already all-reduced): torch's clip_grad_norm_ over the parameters.
        """
        clip = self.optim_cfg.grad_clip
        if clip <= 0:
            return
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        # `_step_supports_amp_scaling` is how torch's GradScaler (and Lightning) tell such optimizers apart.
        if scaler is not None and getattr(optimizer, "_step_supports_amp_scaling", False):
            scaler.unscale_(optimizer)
        root = self.trainer.strategy.model
        if _is_fsdp(root):
            norm = root.clip_grad_norm_(clip)
        else:
            norm = torch.nn.utils.clip_grad_norm_(self.parameters(), clip)
        if self._logs_now:
            self.log("train/grad_norm", norm, on_step=True, on_epoch=False)

    def on_fit_start(self) -> None:
        if self.trainer.gradient_clip_val:
            raise ConfigError(
                f"trainer.gradient_clip_val={self.trainer.gradient_clip_val} is not used by tformer-lab: "
                f"set optim.grad_clip instead (0 disables clipping)"
            )

    def on_train_start(self) -> None:
        # A resume continues the schedule it started with (restored with the scheduler's state): a different
        # trainer.max_steps moves only the stop; extra cosine steps run at min_lr.
        scheduler = self.lr_schedulers()
        running = scheduler.lr_lambdas[0] if scheduler is not None else None
        if self.trainer.is_global_zero and self._planned is not None and running != self._planned:
            log.warning(
                "Resumed: the LR schedule continues as the run started it (%s), not as this run's config would "
                "plan it (%s). trainer.max_steps=%d only says where training stops.",
                running.describe(), self._planned.describe(), self.trainer.max_steps,
            )  # fmt: skip

    def on_train_batch_start(self, batch, batch_idx) -> None:
        if self._resumed_rng is not None:  # here, after the loaders drew their seeds, as in the uninterrupted run
            checkpoint_format.set_rng_state(self._resumed_rng)
            self._resumed_rng = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["tformer_family"] = self.family  # tools refuse checkpoints of another family
        checkpoint["tformer_format"] = checkpoint_format.FORMAT
        checkpoint["tformer_rng"] = checkpoint_format.rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        checkpoint_format.migrate(checkpoint, self.family)  # older formats (and compiled-model keys)
        self._resumed_rng = checkpoint.get("tformer_rng")


def logs_this_step(trainer: L.Trainer) -> bool:
    """Whether Lightning writes this training step's logged metrics to the loggers (every
    trainer.log_every_n_steps steps, when the run stops, fast_dev_run). Asked before the optimizer step it answers
    for the step in progress: the counter it reads moves after the step's metrics are written. (A private
    Lightning name: training/private_api.py lists it, tests/lightning_modules/test_step_logging.py checks it.)"""
    return bool(trainer._logger_connector.should_update_logs or trainer.fast_dev_run)


def _is_fsdp(module: torch.nn.Module) -> bool:
    # An FSDP module exists only once torch.distributed.fsdp was imported; importing it to ask costs about 1 s
    # (it pulls in sympy and DTensor) in every run that clips gradients.
    fsdp = sys.modules.get("torch.distributed.fsdp")
    return fsdp is not None and isinstance(module, fsdp.FullyShardedDataParallel)
