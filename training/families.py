"""Model families: which LightningModule trains which model config.

A plain tuple of imported classes (readers and tools see the dependency). Each LightningModule names its
model config class (`config_class`) and its family tag (`family`, written into every checkpoint so that
tools refuse the wrong kind of model). A new family is one more LightningModule in MODULES.
"""

from __future__ import annotations

from errors import ConfigError
from lightning_modules.base import TformerModule
from lightning_modules.gpt import GPTLitModule
from lightning_modules.seq2seq import Seq2SeqLitModule

MODULES: tuple[type[TformerModule], ...] = (GPTLitModule, Seq2SeqLitModule)


def module_for_config(model_cfg) -> type[TformerModule]:
    """The LightningModule that trains an instantiated model config (a dataclass from models/)."""
    for module in MODULES:
        if isinstance(model_cfg, module.config_class):
            return module
    known = ", ".join(m.config_class.__name__ for m in MODULES)
    raise ConfigError(f"no LightningModule trains a {type(model_cfg).__name__} (known configs: {known})")


def module_for_family(family: str) -> type[TformerModule]:
    """The LightningModule of a family tag ("gpt", "seq2seq"), as found in checkpoints."""
    for module in MODULES:
        if module.family == family:
            return module
    raise ConfigError(f"unknown model family {family!r}; known: {sorted(m.family for m in MODULES)}")
