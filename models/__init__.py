"""Plain-torch transformer models: no Lightning, Hydra or W&B in here."""

from models.gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig"]
