"""Model families: which config class, LightningModule and checkpoint tag belong together.

A family is named in every checkpoint (`tformer_family`), so tools can refuse the wrong kind of model.
Add a family by adding a row here.
"""

from __future__ import annotations

import importlib

# family -> (model config class, LightningModule class), as import paths
FAMILIES: dict[str, tuple[str, str]] = {
    "gpt": ("models.gpt.GPTConfig", "lightning_modules.gpt.GPTLitModule"),
    "seq2seq": ("models.seq2seq.Seq2SeqConfig", "lightning_modules.seq2seq.Seq2SeqLitModule"),
}


def _load(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def family_of(model_cfg) -> str:
    """The family of an instantiated model config (a dataclass from models/)."""
    for family, (config_path, _) in FAMILIES.items():
        if isinstance(model_cfg, _load(config_path)):
            return family
    raise ValueError(f"no model family for config type {type(model_cfg).__name__}; add it to lab/families.py")


def module_class(family: str):
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}")
    return _load(FAMILIES[family][1])
