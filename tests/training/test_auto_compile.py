"""compile: ${auto_compile:...}: on where it pays (CUDA, the GPT, not FSDP), off elsewhere."""

from __future__ import annotations

import pytest
import torch

from training.config import auto_compile

GPT, SEQ2SEQ = "models.gpt.GPTConfig", "models.seq2seq.Seq2SeqConfig"
FSDP = {"_target_": "lightning.pytorch.strategies.FSDPStrategy", "sharding_strategy": "FULL_SHARD"}


@pytest.mark.parametrize(
    "accelerator, target, strategy, expected",
    [
        ("auto", GPT, "auto", True),
        ("gpu", GPT, "ddp", True),
        ("cpu", GPT, "auto", False),  # no compile on CPU runs
        ("auto", SEQ2SEQ, "auto", False),  # token-budget batches change shape: every shape would recompile
        ("gpu", GPT, FSDP, False),
    ],
)
def test_auto_compile_on_a_cuda_machine(monkeypatch, accelerator, target, strategy, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert auto_compile(accelerator, target, strategy) is expected


def test_no_cuda_no_compile(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert auto_compile("auto", GPT, "auto") is False


def test_the_train_config_resolves_it(monkeypatch):
    from hydra import compose, initialize_config_dir

    from tests.e2e.conftest import ROOT

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        assert compose("train").compile is True
        assert compose("train", ["trainer=fsdp"]).compile is False
        assert compose("train", ["model=seq2seq_small"]).compile is False
        assert compose("train", ["compile=false"]).compile is False
