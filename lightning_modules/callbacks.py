"""Callbacks: text samples at the end of training (file + W&B table)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger


class SampleText(L.Callback):
    """Once fit ends, generate samples from the best checkpoint's weights into <run>/samples.txt.

    The samples also go to every W&B logger as a table ("samples": id, prompt, text).
    """

    def __init__(
        self,
        output_dir: str,
        num_samples: int = 3,
        max_new_tokens: int = 300,
        prompt: str = "\n",
        temperature: float = 0.8,
        top_k: int | None = 200,
        top_p: float | None = None,
        seed: int | None = 1337,
    ):
        self.output_dir = Path(output_dir)
        self.num_samples, self.max_new_tokens, self.prompt = num_samples, max_new_tokens, prompt
        self.temperature, self.top_k, self.top_p, self.seed = temperature, top_k, top_p, seed
        self.samples: list[str] = []

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or self.num_samples <= 0 or not hasattr(pl_module, "sample"):
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best and Path(best).is_file():
            state = torch.load(best, map_location=pl_module.device, weights_only=False)["state_dict"]
            pl_module.load_state_dict(state)
        self.samples = pl_module.sample(
            self.prompt,
            num_samples=self.num_samples,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            seed=self.seed,
        )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        text = "".join(f"--- sample {i} ---\n{s}\n" for i, s in enumerate(self.samples))
        (self.output_dir / "samples.txt").write_text(text, encoding="utf-8")
        rows = [[i, self.prompt, s] for i, s in enumerate(self.samples)]
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_text(key="samples", columns=["id", "prompt", "text"], data=rows)
