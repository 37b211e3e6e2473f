"""training/loggers.py: W&B's service started ahead of wandb.init only where a W&B logger is configured (the whole
offline run: tests/e2e/test_train.py::test_wandb_offline_run_holds_config_metrics_and_samples)."""

from __future__ import annotations

import os

from omegaconf import OmegaConf

from training import loggers


def config(**logger) -> OmegaConf:
    return OmegaConf.create({"logger": logger})


WANDB = {"_target_": "lightning.pytorch.loggers.WandbLogger", "offline": True, "project": "p"}
CSV = {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": "."}


def test_the_wandb_entry_is_found_among_the_loggers_and_their_options():
    assert loggers.wandb_entry(config(csv=CSV, wandb=WANDB, watch=None)).project == "p"
    assert loggers.wandb_entry(config(csv=CSV, watch="gradients")) is None
    assert loggers.wandb_entry(OmegaConf.create({})) is None


def test_no_wandb_logger_no_service_and_no_environment_change(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "placeholder")
    monkeypatch.delenv("WANDB_MODE")  # restored (absent) after the test
    assert loggers.start_wandb_service(config(csv=CSV)) is None
    assert "WANDB_MODE" not in os.environ


def test_disabled_wandb_starts_no_service(monkeypatch):
    from wandb.sdk import wandb_setup

    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setattr(wandb_setup, "_singleton", None)  # settings are read from this environment
    started = []
    monkeypatch.setattr(wandb_setup._WandbSetup, "ensure_service", lambda self: started.append(self))
    assert loggers.start_wandb_service(config(wandb={**WANDB, "offline": False})) is None
    assert started == [] and os.environ["WANDB_MODE"] == "disabled"  # online entry: the user's mode stays


def test_an_offline_run_reads_wandb_settings_as_offline_and_starts_the_service_once(monkeypatch):
    from wandb.sdk import wandb_setup

    monkeypatch.setenv("WANDB_MODE", "placeholder")
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setattr(wandb_setup, "_singleton", None)
    started = []
    monkeypatch.setattr(wandb_setup._WandbSetup, "ensure_service", lambda self: started.append(self))
    thread = loggers.start_wandb_service(config(csv=CSV, wandb=WANDB))
    thread.join(timeout=30)
    assert os.environ["WANDB_MODE"] == "dryrun"  # what Lightning's WandbLogger sets before wandb.init
    assert started == [wandb_setup.singleton()] and started[0].settings._offline
