"""The GPT LightningModule: language-model loss, AdamW groups, warmup + cosine, clipping."""

from __future__ import annotations

import torch
from torchmetrics import MeanMetric

from datamodules.text_tokenizers import build_tokenizer
from lightning_modules.base import TformerModule
from lightning_modules.compiling import check_compile_options, compile_model, eager
from lightning_modules.optim import OptimConfig
from models.gpt import GPT, GPTConfig
from models.pretrained import load_gpt2

FAMILY = "gpt"


class GPTLitModule(TformerModule):
    """Everything needed to rebuild the model and its tokenizer is saved with the checkpoint.

    A GPTConfig starts a new model: with `init_from` set, GPT-2's weights are loaded here. A checkpoint
    rebuilds the module from the plain values it saved and then loads its own weights, so it never reads
    init_from again (no transformers, no download).
    """

    family = FAMILY
    config_class = GPTConfig

    def __init__(
        self,
        model: GPTConfig | dict,
        tokenizer: dict,
        optim: dict | None = None,
        compile: bool = False,
        compile_mode: str | None = None,
        compile_scope: str = "model",
    ):
        super().__init__()
        check_compile_options(compile_scope, compile_mode)
        new = isinstance(model, GPTConfig)
        self.config = model if new else GPTConfig(**model)
        self.save_hyperparameters(  # plain values: the checkpoint alone rebuilds model and tokenizer
            {"model": self.config.to_dict(), "tokenizer": tokenizer, "optim": optim, "compile": compile,
             "compile_mode": compile_mode, "compile_scope": compile_scope}
        )  # fmt: skip
        self.optim_cfg = OptimConfig(**(optim or {}))
        self.model = GPT(self.config)
        if new and self.config.init_from:
            load_gpt2(self.model)
        self.tokenizer = build_tokenizer(tokenizer)
        self.val_loss = MeanMetric()
        if compile:
            compile_model(self.model, scope=compile_scope, mode=compile_mode)  # in place: parameter names stay

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        return self.model(idx, targets)

    def training_step(self, batch, batch_idx):
        x, y = batch
        _, loss = self(x, y)
        self.log_step("train/loss", loss, prog_bar=True)  # train/grad_norm: TformerModule
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        _, loss = self(x, y)
        self.val_loss.update(loss, weight=(y >= 0).sum())

    def on_validation_epoch_end(self) -> None:
        self.log("val/loss", self.val_loss.compute(), prog_bar=True, sync_dist=False)
        self.val_loss.reset()

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
        on_token=None,
    ) -> list[str]:
        """Generate num_samples continuations of prompt as one batch (KV cache), returned as text (prompt
        included). on_token(length) is called after every new token (progress)."""
        ids = self.tokenizer.encode(prompt) or [0]
        idx = torch.tensor([ids] * num_samples, dtype=torch.long, device=self.device)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        with eager():  # compiled blocks would recompile for every new length
            out = self.model.generate(
                idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator,
                on_token=on_token,
            )  # fmt: skip
        return [self.tokenizer.decode(row.tolist()) for row in out]
