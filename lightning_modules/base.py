"""What every family's LightningModule shares: AdamW + schedule, clipping, checkpoint family tags."""

from __future__ import annotations

import math

import lightning as L
import torch
from torch.optim.lr_scheduler import LambdaLR

from lightning_modules.optim import OptimConfig, lr_lambda, make_adamw

DEFAULT_TOTAL_STEPS = 10_000  # schedule length when the trainer gives none (no trainer, endless data)


class TformerModule(L.LightningModule):
    """Subclasses set `family` (the checkpoint tag) and `config_class` (the model config they train), and build
    `self.config`, `self.model` (plain torch) and `self.optim_cfg` (OptimConfig)."""

    family: str
    config_class: type
    model: torch.nn.Module
    optim_cfg: OptimConfig

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
        optimizer = make_adamw(self.model, self.optim_cfg, device_type=self.device.type)
        scheduler = LambdaLR(optimizer, lr_lambda(self.optim_cfg, self.schedule_steps()))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

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
        self.log("train/grad_norm", norm, on_step=True, on_epoch=False)

    def on_fit_start(self) -> None:
        if self.trainer.gradient_clip_val:
            raise ValueError(
                f"trainer.gradient_clip_val={self.trainer.gradient_clip_val} is not used by tformer-lab: "
                f"set optim.grad_clip instead (0 disables clipping)"
            )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["tformer_family"] = self.family  # tools refuse checkpoints of another family

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Checkpoints of a torch.compile'd model elsewhere may carry "_orig_mod." in their keys.
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if "_orig_mod." in k]:
            state[key.replace("_orig_mod.", "")] = state.pop(key)


def _is_fsdp(module: torch.nn.Module) -> bool:
    if not torch.distributed.is_available():
        return False
    from torch.distributed.fsdp import FullyShardedDataParallel

    return isinstance(module, FullyShardedDataParallel)
