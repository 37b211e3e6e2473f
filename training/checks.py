"""Checks of a composed config that run before any work: the model config, and model and data that fit."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig
from omegaconf.errors import InterpolationKeyError


def build_model_config(cfg: DictConfig):
    """Instantiate (and so validate) the model config before any data work."""
    try:
        return instantiate(cfg.model, _convert_="all")
    except InterpolationKeyError as err:
        # Model configs take their lengths from the data config (${data.block_size}, ${data.max_len}).
        raise ValueError(
            f"model={cfg.model.get('name')} does not fit data={cfg.data.get('name')} ({err}): GPT models train on "
            f"language-model corpora (e.g. data=shakespeare_char), seq2seq models on parallel corpora "
            f"(e.g. data=multi30k)"
        ) from err


def check_block_sizes(model_cfg, data_block: int) -> None:
    if data_block > model_cfg.block_size:
        raise ValueError(
            f"data.block_size={data_block} is larger than the model's context model.block_size="
            f"{model_cfg.block_size}: lower data.block_size or raise model.block_size"
        )


def check_lengths(model_cfg, data_cfg) -> None:
    """The data's longest sequence must fit the model's positions (GPT block_size, seq2seq max_len)."""
    if hasattr(model_cfg, "block_size") and "block_size" in data_cfg:
        check_block_sizes(model_cfg, data_cfg.block_size)
    if hasattr(model_cfg, "max_len") and "max_len" in data_cfg and data_cfg.max_len > model_cfg.max_len:
        raise ValueError(
            f"data.max_len={data_cfg.max_len} is larger than the model's model.max_len={model_cfg.max_len}: "
            f"lower data.max_len or raise model.max_len"
        )


def check_data_family(datamodule, family: str, cfg: DictConfig) -> None:
    """A GPT needs a language-model corpus, a seq2seq model a parallel corpus."""
    data_family = getattr(datamodule, "family", "gpt")
    if data_family != family:
        raise ValueError(
            f"data={cfg.data.get('name')} is a corpus for {data_family} models, but model={cfg.model.get('name')} "
            f"is a {family} model: pick a matching pair (e.g. model=gpt_small data=shakespeare_char, "
            f"or model=seq2seq_small data=multi30k)"
        )
