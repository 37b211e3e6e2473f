"""What every family's LightningModule shares: optimizer (optim.name) + schedule, clipping, checkpoint family tags."""

from __future__ import annotations

import math

import lightning as L
import torch
from torch.optim.lr_scheduler import LambdaLR

from lightning_modules.optim import OptimConfig, lr_lambda, make_optimizer

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
        optimizer = make_optimizer(self.model, self.optim_cfg, device_type=self.device.type)
        scheduler = LambdaLR(optimizer, lr_lambda(self.optim_cfg, self.schedule_steps()))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_before_optimizer_step(self, optimizer) -> None:
        # Clip here rather than through Trainer(gradient_clip_val=...), which rejects fused AdamW.
        if self.optim_cfg.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.parameters(), self.optim_cfg.grad_clip)
            self.log("train/grad_norm", norm, on_step=True, on_epoch=False)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["tformer_family"] = self.family  # tools refuse checkpoints of another family

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Checkpoints of a torch.compile'd model elsewhere may carry "_orig_mod." in their keys.
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if "_orig_mod." in k]:
            state[key.replace("_orig_mod.", "")] = state.pop(key)
