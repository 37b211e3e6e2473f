"""training/budget.py: a compute budget (budget.flops) as trainer.max_steps, and its clear errors."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from errors import ConfigError
from models.gpt import GPTConfig
from training.budget import apply_budget, plan_budget, world_size
from training.checks import build_model_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"

TINY = ["model=gpt_nano", "model.n_layer=2", "model.n_head=2", "model.n_embd=32", "data.batch_size=8",
        "data.block_size=32", "trainer=debug", "logger=csv"]  # fmt: skip


def model(**sizes) -> GPTConfig:
    return GPTConfig(**{"vocab_size": 65, "block_size": 32, "n_layer": 2, "n_head": 2, "n_embd": 32, "bias": False,
                        **sizes})  # fmt: skip


def test_the_steps_a_budget_buys():
    m = model()
    per_token = m.flops_per_token(32)  # the model's own count (6N + 12·L·T·C)
    plan = plan_budget(1e9, m, batch_size=8, block_size=32)
    assert plan.tokens_per_step == 256 and plan.steps == int(1e9 // (per_token * 256))
    assert plan.tokens == plan.steps * 256 and plan.flops == per_token * plan.tokens
    assert 1e9 - per_token * 256 < plan.flops <= 1e9  # the budget, rounded down to whole steps
    assert (plan.params, plan.non_embedding_params) == (m.num_params(), m.num_params(non_embedding=True))
    bigger = plan_budget(1e9, model(n_embd=64), batch_size=8, block_size=32)
    assert bigger.steps < plan.steps  # the same compute buys a bigger model fewer tokens


def test_devices_nodes_and_accumulation_share_the_steps():
    m = model()
    one = plan_budget(1e10, m, batch_size=8, block_size=32)
    eight = plan_budget(1e10, m, batch_size=8, block_size=32, world=4, accumulate=2)
    assert eight.tokens_per_step == 8 * one.tokens_per_step
    assert eight.steps == int(1e10 // (m.flops_per_token(32) * 256 * 8))


@pytest.mark.parametrize(
    "trainer, processes",
    [
        ({"devices": 1}, 1),
        ({"devices": 4, "num_nodes": 2}, 8),
        ({"devices": "2"}, 2),
        ({"devices": "0,1,3"}, 3),
        ({"devices": [0, 1]}, 2),
        ({"devices": "auto", "accelerator": "cpu"}, 1),
        ({"devices": -1, "accelerator": "cpu", "num_nodes": 3}, 3),
    ],
)
def test_world_size_as_lightning_reads_the_trainer_config(trainer, processes):
    assert world_size(OmegaConf.create(trainer)) == processes


def test_less_than_one_step_is_refused():
    with pytest.raises(ConfigError, match=r"budget.flops=1e\+06 is less than one optimizer step of this model"):
        plan_budget(1e6, model(), batch_size=8, block_size=32)


def composed(hydra_job, overrides: list[str], **kwargs):
    cfg = hydra_job([*TINY, *overrides], multirun=False, **kwargs)
    return cfg, dataclasses.replace(build_model_config(cfg), vocab_size=65)


def test_budget_sets_max_steps_and_records_its_choice(hydra_job, caplog):
    cfg, m = composed(hydra_job, ["budget.flops=2e9"])
    assert cfg.trainer.max_steps == 4  # trainer=debug's
    with caplog.at_level(logging.INFO, logger="tformer"):
        plan = apply_budget(cfg, m, "gpt")
    assert plan.steps == int(2e9 // (m.flops_per_token(32) * 256)) and cfg.trainer.max_steps == plan.steps
    chosen = OmegaConf.to_container(cfg.budget.chosen)
    assert chosen["steps"] == plan.steps and chosen["tokens"] == plan.tokens and chosen["params"] == m.num_params()
    assert f"budget.flops=2e+09: {plan.steps:,} steps x 256 tokens" in caplog.text
    assert "replaces trainer.max_steps=4 of the config" in caplog.text


def test_no_budget_changes_nothing(hydra_job):
    cfg, m = composed(hydra_job, [])
    assert apply_budget(cfg, m, "gpt") is None
    assert cfg.trainer.max_steps == 4 and "chosen" not in cfg.budget


def test_a_max_steps_on_the_command_line_beside_a_budget_is_an_error(hydra_job):
    cfg, m = composed(hydra_job, ["budget.flops=2e9", "trainer.max_steps=10"])
    with pytest.raises(ConfigError, match=r"budget.flops=2e\+09 sets trainer.max_steps itself, but "
                                          r"trainer.max_steps=10 was given too: drop one of them"):  # fmt: skip
        apply_budget(cfg, m, "gpt")


@pytest.mark.parametrize("value", ["0", "-3e9", "true", "lots"])
def test_a_budget_that_is_no_positive_number_is_refused(hydra_job, value):
    cfg, m = composed(hydra_job, [f"budget.flops={value}"])
    with pytest.raises(
        ConfigError, match=r"budget.flops=.* must be a positive number of FLOPs \(e.g. budget.flops=3e13\)"
    ):
        apply_budget(cfg, m, "gpt")


def test_a_budget_needs_fixed_size_batches(hydra_job):
    cfg, m = composed(hydra_job, ["budget.flops=2e9"])
    with pytest.raises(ConfigError, match=r"budget.flops needs batches of data.batch_size x data.block_size tokens"):
        apply_budget(cfg, m, "seq2seq")


def test_a_warmup_longer_than_the_budget_is_said(hydra_job, caplog):
    cfg, m = composed(hydra_job, ["budget.flops=2e9", "optim.warmup_steps=1000"])
    with caplog.at_level(logging.WARNING, logger="tformer"):
        plan = apply_budget(cfg, m, "gpt")
    assert f"optim.warmup_steps=1000 is longer than the run (trainer.max_steps={plan.steps})" in caplog.text


def test_a_budget_run_resumes_past_the_config_files_max_steps(hydra_job, tmp_path):
    """The resumed run's steps come from its budget, not from the config's trainer.max_steps (4 with trainer=debug)."""
    import torch

    from training.checks import check_run

    ckpt = torch.load(FIXTURES / "gpt_format1.ckpt", map_location="cpu", weights_only=False)
    ckpt["global_step"] = 10  # past trainer=debug's 4 steps
    torch.save(ckpt, tmp_path / "last.ckpt")
    sizes = ["model.n_layer=1", "model.n_head=2", "model.n_embd=8", "model.bias=true", "data.block_size=16",
             f"ckpt_path={tmp_path / 'last.ckpt'}"]  # fmt: skip
    with pytest.raises(ValueError, match="trainer.max_steps=4 but ckpt_path=.* has already trained 10 steps"):
        check_run(hydra_job([*TINY, *sizes], multirun=False))
    check_run(hydra_job([*TINY, *sizes, "budget.flops=1e9"], multirun=False))  # the budget decides later
