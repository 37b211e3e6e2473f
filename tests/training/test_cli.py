"""training/cli.py: which errors are the user's (one line, exit 1) and which are bugs (traceback); free text."""

from __future__ import annotations

import errno

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import OmegaConf

from errors import ConfigError, UserError
from training.cli import quote_free_text, user_error_message, user_errors


def check_size(n):
    if n <= 0:
        raise ConfigError(f"model.n_embd={n} must be a positive integer")


def buggy_check(n):
    if n <= 0:
        raise ValueError(f"n={n}: an internal invariant, not the user's input")


def caught(fn) -> BaseException:
    try:
        fn()
    except Exception as exc:
        return exc
    raise AssertionError("no exception")


def test_the_projects_own_checks_are_user_errors():
    assert user_error_message(caught(lambda: check_size(0))) == "model.n_embd=0 must be a positive integer"
    assert user_error_message(UserError("hydra.run.dir=x already holds another run")) is not None
    missing = caught(lambda: __import__("training.checkpoint").checkpoint.read_checkpoint("/no/such.ckpt"))
    assert user_error_message(missing) == "ckpt_path=/no/such.ckpt does not exist (no such file)"


def test_a_config_class_error_is_unwrapped_from_hydras_instantiate():
    cfg = {"_target_": "models.gpt.GPTConfig", "n_embd": 30, "n_head": 4}
    message = user_error_message(caught(lambda: instantiate(cfg)))
    assert message.startswith("model.n_embd=30 is not divisible by model.n_head=4")


def test_bugs_are_not_user_errors():
    assert user_error_message(caught(lambda: buggy_check(0))) is None  # a plain ValueError raised by our own code
    assert user_error_message(caught(lambda: int("abc"))) is None  # a builtin's ValueError inside our code
    assert user_error_message(caught(lambda: torch.optim.AdamW([torch.zeros(1)], betas=(0.9, 1.5)))) is None
    assert user_error_message(caught(lambda: {}["key"])) is None
    assert user_error_message(RuntimeError("DDP: local rank 1 exited with code 1")) is None


def test_user_errors_print_one_line_and_exit_1(capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exit_info, user_errors():
        check_size(-3)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "Error: model.n_embd=-3 must be a positive integer\n"


def test_bugs_and_full_error_keep_the_traceback(monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(KeyError), user_errors():
        {}["key"]
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ValueError, match="model.n_embd=0"), user_errors():
        check_size(0)


@pytest.mark.parametrize("text", ["ROMEO: Hello, world", "Ünïcode [x] {y}", "It's ${x}, a\\", "a=b", "\n"])
def test_free_text_reaches_the_config_verbatim(text):
    (arg,) = quote_free_text([f"prompt={text}"], ("prompt",))
    (override,) = OverridesParser.create().parse_overrides([arg])
    assert OmegaConf.create({"prompt": override.value()}).prompt == text


def test_free_text_leaves_other_keys_and_quoted_values_alone():
    argv = ["sample.py", "num_samples=2", "prompt='already, quoted'", "prompt=null"]
    assert quote_free_text(argv, ("prompt",)) == argv


def test_a_plain_value_error_from_model_code_during_a_run_keeps_its_traceback(hydra_job, monkeypatch):
    """A bug in the model raised as ValueError mid-run is not dressed up as bad input: it propagates whole."""
    from models.gpt import GPT
    from training.run import train

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def broken_forward(self, idx, targets=None, **kw):
        raise ValueError("shape mismatch inside the model (a bug)")

    monkeypatch.setattr(GPT, "forward", broken_forward)
    overrides = ["model=gpt_nano", "model.n_layer=1", "model.n_embd=16", "model.n_head=2", "data.block_size=16",
                 "data.batch_size=2", "trainer=debug", "logger=csv"]  # fmt: skip
    cfg = hydra_job(overrides, multirun=False)
    with pytest.raises(ValueError, match="shape mismatch inside the model") as err, user_errors():
        train(cfg)
    assert not isinstance(err.value, UserError)


def test_a_full_disk_anywhere_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        with user_errors():
            raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/csv/metrics.csv")
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: could not write /runs/x/csv/metrics.csv: no space left on device (/runs/x/csv: ")
    assert err.count("\n") == 1
