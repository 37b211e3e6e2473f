"""The best checkpoint's weights, loaded once after training for every callback that uses them."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch


def use_best_weights(trainer: L.Trainer, pl_module: L.LightningModule) -> None:
    """Load the best checkpoint's weights into pl_module, unless they are loaded already (same file, same
    modification time): SampleText and GenerationMetrics both run after training on the best weights."""
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if not best or not Path(best).is_file():
        return
    key = (best, Path(best).stat().st_mtime_ns)
    if getattr(pl_module, "_tformer_best_loaded", None) == key:
        return
    checkpoint = torch.load(best, map_location=pl_module.device, weights_only=True)  # data, never code
    pl_module.load_state_dict(checkpoint["state_dict"])
    pl_module._tformer_best_loaded = key
