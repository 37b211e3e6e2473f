"""The CPU duration check: a warning always, and above an hour a yes (long_cpu_run=true or the prompt)."""

from __future__ import annotations

import logging

import pytest
from omegaconf import OmegaConf

from models.gpt import GPTConfig
from training import duration

MODEL = GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384)


def cfg(**top):
    base = {"trainer": {"max_steps": 5000}, "data": {"batch_size": 64, "block_size": 256}, "cpu_time_check": True}
    return OmegaConf.create({**base, **top})


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(duration.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(duration, "matmul_flops_per_second", lambda: 50e9)  # this run: about 25 hours


def tty(monkeypatch, interactive: bool) -> None:
    monkeypatch.setattr(duration.sys.stdin, "isatty", lambda: interactive, raising=False)
    monkeypatch.setattr(duration.sys.stdout, "isatty", lambda: interactive, raising=False)


def test_a_long_cpu_run_without_a_terminal_stops_with_the_way_to_go_on(cpu_only, monkeypatch, caplog):
    tty(monkeypatch, False)
    with caplog.at_level(logging.WARNING, logger="tformer"), pytest.raises(ValueError, match="long_cpu_run=true"):
        duration.check_cpu_duration(cfg(), MODEL, ask=lambda _: pytest.fail("must not wait for an answer"))
    assert "experiment=shakespeare_char_modern" in caplog.text and " h on this CPU" in caplog.text


def test_long_cpu_run_true_goes_on(cpu_only, monkeypatch):
    tty(monkeypatch, False)
    duration.check_cpu_duration(cfg(long_cpu_run=True), MODEL, ask=lambda _: pytest.fail("no question"))


@pytest.mark.parametrize("answer, goes_on", [("y", True), ("yes", True), ("", False), ("n", False)])
def test_at_a_terminal_the_user_is_asked(cpu_only, monkeypatch, answer, goes_on):
    tty(monkeypatch, True)
    if goes_on:
        duration.check_cpu_duration(cfg(), MODEL, ask=lambda _: answer)
    else:
        with pytest.raises(SystemExit, match="Not training"):
            duration.check_cpu_duration(cfg(), MODEL, ask=lambda _: answer)


def test_a_short_cpu_run_only_gets_the_estimate(cpu_only, monkeypatch, caplog):
    tty(monkeypatch, False)
    short = cfg(trainer={"max_steps": 2})
    with caplog.at_level(logging.WARNING, logger="tformer"):
        duration.check_cpu_duration(short, MODEL, ask=lambda _: pytest.fail("no question"))
    assert "2 steps of gpt" in caplog.text


@pytest.mark.parametrize("max_time", ["00:00:30:00", {"minutes": 30}])
def test_a_wall_time_budget_bounds_the_estimate(cpu_only, monkeypatch, caplog, max_time):
    tty(monkeypatch, False)  # 1e9 steps would take centuries: trainer.max_time stops the run after 30 minutes
    budget = cfg(trainer={"max_steps": 1_000_000_000, "max_time": max_time})
    with caplog.at_level(logging.WARNING, logger="tformer"):
        duration.check_cpu_duration(budget, MODEL, ask=lambda _: pytest.fail("no question"))
    assert "trains until trainer.max_time, 30 min, on this CPU" in caplog.text
    with pytest.raises(ValueError, match="long_cpu_run=true"):  # a budget above an hour still asks
        duration.check_cpu_duration(cfg(trainer={"max_steps": 10**9, "max_time": "00:02:00:00"}), MODEL)


# experiment=shakespeare_char_cpu states its duration (cpu_expected_s); its own model, and the same recipe on a
# new corpus with GPT-2 tokens (the 50,257-row output layer): the CPU at 50 GFLOP/s (the cpu_only fixture).
RECIPE = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
RECIPE_BPE = GPTConfig(vocab_size=50257, block_size=64, n_layer=4, n_head=4, n_embd=128)


def recipe(**top):
    return cfg(
        **{"trainer": {"max_steps": 1250}, "data": {"batch_size": 32, "block_size": 64}, "cpu_expected_s": 330, **top}
    )


def test_a_recipes_own_run_gets_the_estimate_as_a_plain_line(cpu_only, monkeypatch, caplog):
    tty(monkeypatch, False)
    with caplog.at_level(logging.INFO, logger="tformer"):
        duration.check_cpu_duration(recipe(), RECIPE, ask=lambda _: pytest.fail("no question"))
    (line,) = [r for r in caplog.records if "No GPU found" in r.getMessage()]
    assert line.levelno == logging.INFO and "(this recipe: about 6 min on 2 cores)" in line.getMessage()


def test_a_run_far_above_its_recipe_says_so_and_why(cpu_only, monkeypatch, caplog):
    tty(monkeypatch, False)
    fast = recipe(trainer={"max_steps": 600})  # short enough to need no yes: the warning alone
    with caplog.at_level(logging.INFO, logger="tformer"):
        duration.check_cpu_duration(fast, RECIPE_BPE, ask=lambda _: pytest.fail("no question"))
    (line,) = [r for r in caplog.records if "No GPU found" in r.getMessage()]
    text = line.getMessage()
    assert line.levelno == logging.WARNING and "this recipe's 6 min on 2 cores (cpu_expected_s=330)" in text
    seconds = duration.estimate_seconds(RECIPE_BPE.flops_per_token(64), 32 * 64, 600)
    assert f"{seconds / 330:.0f}x" in text and seconds > 3 * 330
    assert "output layer over a 50,257-token vocabulary is 88% of the work: data.tokenizer=char" in text
    with pytest.raises(ValueError, match="long_cpu_run=true to train anyway, or the output layer"):  # above an hour
        duration.check_cpu_duration(recipe(), RECIPE_BPE, ask=lambda _: pytest.fail("no question"))
    wide = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=320)  # wider, not a vocabulary
    with caplog.at_level(logging.INFO, logger="tformer"):
        duration.check_cpu_duration(fast, wide, ask=lambda _: pytest.fail("no question"))
    assert "the overrides made the model or its batches bigger than the recipe's" in caplog.records[-1].getMessage()


def test_cpu_time_check_false_still_turns_it_all_off(cpu_only, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="tformer"):
        duration.check_cpu_duration(recipe(cpu_time_check=False), RECIPE_BPE)
    assert "No GPU" not in caplog.text
