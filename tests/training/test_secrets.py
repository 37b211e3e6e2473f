"""Secrets stay secret (training/secrets.py): the rule by key name, and each thing a run writes that could hold one.
A whole run (config.yaml, .hydra/, W&B's files): tests/e2e/test_trust.py::test_no_secret_reaches_the_disk."""

from __future__ import annotations

import sys

import pytest
from omegaconf import OmegaConf

from training.config import loggable
from training.secrets import (
    REDACTED,
    RedactSecrets,
    is_secret_key,
    redact_override,
    redact_text,
    redact_yaml_file,
    redacted_argv,
)


@pytest.mark.parametrize(
    "key",
    ["api_key", "password", "db.password", "my_token", "hf_token", "HF_TOKEN", "secret", "client_secret",
     "access_key", "private_key", "apiKey", "authToken", "passwd", "credentials", "+db.password", "wandb.api_key"],
)  # fmt: skip
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    ["tokenizer", "data.tokenizer", "tiktoken_dir", "data.tiktoken_dir", "max_new_tokens", "max_tokens",
     "budget.chosen.flops_per_token",
     "val_max_tokens", "key", "monkey", "keys", "exclude_keys", "name", "author", "secretary_name"],
)  # fmt: skip
def test_settings_that_are_not_secrets(key):
    assert not is_secret_key(key)


def test_the_logged_config_hides_secrets_and_keeps_the_settings():
    cfg = OmegaConf.create(
        {
            "data": {"tokenizer": "char", "tiktoken_dir": "/d/tiktoken", "max_tokens": 512},
            "max_new_tokens": 300,
            "api_key": "k1",
            "db": {"password": "p1", "host": "h"},
            "my_token": None,  # nothing to hide
            "runs": [{"secret": "s1"}],
        }
    )
    logged = loggable(cfg)
    assert logged["data"] == {"tokenizer": "char", "tiktoken_dir": "/d/tiktoken", "max_tokens": 512}
    assert logged["max_new_tokens"] == 300 and logged["db"] == {"password": REDACTED, "host": "h"}
    assert logged["api_key"] == REDACTED and logged["my_token"] is None and logged["runs"] == [{"secret": REDACTED}]


def test_overrides_and_command_lines():
    assert redact_override("+api_key=abc") == f"+api_key={REDACTED}"
    assert redact_override("data.tokenizer=gpt2") == "data.tokenizer=gpt2"
    dirname = "+api_key=abc,+db.password=p,data.tokenizer=char,max_new_tokens=5"
    assert redact_text(dirname) == f"+api_key={REDACTED},+db.password={REDACTED},data.tokenizer=char,max_new_tokens=5"


def test_hydra_files_are_rewritten_before_the_job_runs(tmp_path):
    hydra_dir = tmp_path / "run" / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "overrides.yaml").write_text("- +api_key=abc\n- model.n_layer=2\n")
    (hydra_dir / "config.yaml").write_text("api_key: abc\ndata:\n  tokenizer: char\nsize: ${data.tokenizer}\n")
    (hydra_dir / "hydra.yaml").write_text("hydra:\n  job:\n    override_dirname: +api_key=abc,model.n_layer=2\n")
    (tmp_path / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: [+my_token=t]\nmy_token: t\n")
    config = OmegaConf.create({"hydra": {"output_subdir": ".hydra", "runtime": {"output_dir": str(tmp_path / "run")},
                                         "mode": "MULTIRUN", "sweep": {"dir": str(tmp_path)}}})  # fmt: skip
    RedactSecrets().on_job_start(config)
    text = "".join(p.read_text() for p in [*hydra_dir.iterdir(), tmp_path / "multirun.yaml"])
    assert "abc" not in text and "t\n" not in text.replace(REDACTED, "")
    assert OmegaConf.load(hydra_dir / "overrides.yaml") == [f"+api_key={REDACTED}", "model.n_layer=2"]
    kept = OmegaConf.load(hydra_dir / "config.yaml")
    assert kept.data.tokenizer == "char" and kept.size == "char"  # interpolations kept, as Hydra wrote them
    assert not redact_yaml_file(hydra_dir / "overrides.yaml")  # nothing left to change: the file is not rewritten


def test_the_command_line_wandb_records_is_redacted(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py", "+api_key=abc", "model.n_layer=2"])
    with redacted_argv():
        assert sys.argv == ["train.py", f"+api_key={REDACTED}", "model.n_layer=2"]
    assert sys.argv[1] == "+api_key=abc"
