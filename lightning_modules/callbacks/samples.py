"""Callbacks that sample text after training: SampleText writes <run>/samples.txt (and a W&B table)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger

from lightning_modules.callbacks.best import use_best_weights

log = logging.getLogger("tformer")


class SamplingCallback(L.Callback):
    """What callbacks that sample from the trained GPT share: where to write, and how to sample
    (`self.sampling`: temperature, top_k, top_p, passed to GPTLitModule.sample)."""

    def __init__(
        self,
        output_dir: str,
        num_samples: int,
        prompt: str = "\n",
        temperature: float = 0.8,
        top_k: int | None = 200,
        top_p: float | None = None,
        seed: int | None = 1337,
    ):
        self.output_dir = Path(output_dir)
        self.num_samples, self.prompt, self.seed = num_samples, prompt, seed
        self.sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p)


class SampleText(SamplingCallback):
    """Once fit ends, generate samples from the best checkpoint's weights into <run>/samples.txt.

    The samples also go to every W&B logger as a table ("samples": id, prompt, text).
    """

    def __init__(self, output_dir: str, num_samples: int = 3, max_new_tokens: int = 300, **sampling):
        super().__init__(output_dir, num_samples, **sampling)
        self.max_new_tokens = max_new_tokens
        self.samples: list[str] = []

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or self.num_samples <= 0 or not hasattr(pl_module, "sample"):
            return
        use_best_weights(trainer, pl_module)
        log.info("Samples: %d x %d tokens from the best weights -> samples.txt", self.num_samples, self.max_new_tokens)
        self.samples = pl_module.sample(
            self.prompt,
            num_samples=self.num_samples,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed,
            **self.sampling,
        )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        text = "".join(f"--- sample {i} ---\n{s}\n" for i, s in enumerate(self.samples))
        (self.output_dir / "samples.txt").write_text(text, encoding="utf-8")
        rows = [[i, self.prompt, s] for i, s in enumerate(self.samples)]
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_text(key="samples", columns=["id", "prompt", "text"], data=rows)
