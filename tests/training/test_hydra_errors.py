"""A misspelt key is one line naming the key meant (training/hydra_errors.py), and the private Hydra name it wraps
is where it is assumed to be. As users see it: tests/e2e/test_trust.py::test_small_mistakes_get_one_line_answers."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

import training.config  # noqa: F401  (resolvers)
from training.hydra_errors import explain_unknown_keys, unknown_key_message

CONF = Path(__file__).resolve().parents[2] / "conf"


def composition_error(*overrides: str) -> ConfigCompositionException:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        with pytest.raises(ConfigCompositionException) as err:
            compose(config_name="train", overrides=list(overrides))
    return err.value


def test_a_misspelt_key_names_the_key_meant():
    message = unknown_key_message(composition_error("model.n_embdd=64"))
    assert message == "model.n_embdd is not a setting (did you mean model.n_embd?); to add a new key, write " \
                      "+model.n_embdd=64"  # fmt: skip
    assert unknown_key_message(composition_error("seeed=3")).startswith("seeed is not a setting (did you mean seed?)")


def test_a_key_like_no_other_lists_what_there_is():
    message = unknown_key_message(composition_error("optim.zzz=1"))
    assert message.startswith("optim.zzz is not a setting (optim has lr, min_lr, weight_decay")


def test_other_composition_errors_keep_hydras_report():
    assert unknown_key_message(composition_error("model=gpt_nope")) is None


def test_hydra_reports_through_the_function_that_is_wrapped():
    import hydra._internal.utils as hydra_utils

    assert "run_and_report(" in inspect.getsource(hydra_utils._run_hydra)  # looked up as a module global
    original = hydra_utils.run_and_report
    try:
        explain_unknown_keys()
        explain_unknown_keys()  # once is enough
        assert hydra_utils.run_and_report is not original
        assert hydra_utils.run_and_report.explains_unknown_keys
        assert hydra_utils.run_and_report(lambda: 42) == 42
    finally:
        hydra_utils.run_and_report = original
