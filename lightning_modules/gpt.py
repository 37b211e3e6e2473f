"""The GPT LightningModule: language-model loss, AdamW groups, warmup + cosine, clipping."""

from __future__ import annotations

import lightning as L
import torch
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import MeanMetric

from datamodules.text_tokenizers import build_tokenizer
from lightning_modules.optim import OptimConfig, lr_lambda, make_adamw
from models.gpt import GPT, GPTConfig

FAMILY = "gpt"


class GPTLitModule(L.LightningModule):
    """Everything needed to rebuild the model and its tokenizer is saved with the checkpoint."""

    def __init__(self, model: dict, tokenizer: dict, optim: dict | None = None, compile: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.config = GPTConfig(**model)
        self.optim_cfg = OptimConfig(**(optim or {}))
        self.model = GPT(self.config)
        self.tokenizer = build_tokenizer(tokenizer)
        self.val_loss = MeanMetric()
        # A compiled view that is not a registered submodule: checkpoints keep plain parameter names.
        self._forward = torch.compile(self.model) if compile else self.model

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        return self._forward(idx, targets)

    def training_step(self, batch, batch_idx):
        x, y = batch
        _, loss = self(x, y)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=x.size(0))
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        _, loss = self(x, y)
        self.val_loss.update(loss, weight=(y >= 0).sum())

    def on_validation_epoch_end(self) -> None:
        self.log("val/loss", self.val_loss.compute(), prog_bar=True, sync_dist=False)
        self.val_loss.reset()

    def on_before_optimizer_step(self, optimizer) -> None:
        # Clip here rather than through Trainer(gradient_clip_val=...), which rejects fused AdamW.
        if self.optim_cfg.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.parameters(), self.optim_cfg.grad_clip)
            self.log("train/grad_norm", norm, on_step=True, on_epoch=False)

    def configure_optimizers(self):
        optimizer = make_adamw(self.model, self.optim_cfg, device_type=self.device.type)
        total = self.trainer.max_steps if self.trainer and self.trainer.max_steps > 0 else 10_000
        scheduler = LambdaLR(optimizer, lr_lambda(self.optim_cfg, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["tformer_family"] = FAMILY

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Checkpoints of a torch.compile'd model elsewhere may carry "_orig_mod." in their keys.
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if "_orig_mod." in k]:
            state[key.replace("_orig_mod.", "")] = state.pop(key)

    @torch.no_grad()
    def sample(
        self,
        prompt: str,
        *,
        num_samples: int = 1,
        max_new_tokens: int = 200,
        temperature: float = 0.8,
        top_k: int | None = 200,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> list[str]:
        """Generate num_samples continuations of prompt, returned as text (prompt included)."""
        ids = self.tokenizer.encode(prompt) or [0]
        idx = torch.tensor([ids] * num_samples, dtype=torch.long, device=self.device)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        out = self.model.generate(
            idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        return [self.tokenizer.decode(row.tolist()) for row in out]
