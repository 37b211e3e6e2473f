"""training/console.py: the console's formatter and the extra ranks' filter, as conf/hydra/default.yaml wires them."""

from __future__ import annotations

import logging

import yaml

from tests.conftest import ROOT
from training.console import ConsoleFormatter, ExtraRankConsole


def record(name: str, level: int, message: str = "m") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_extra_ranks_leave_the_projects_warnings_to_rank_zero():
    keep = ExtraRankConsole().filter
    assert not keep(record("tformer", logging.WARNING))  # optim.warmup_steps longer than the run, ...
    assert not keep(record("datamodules.parallel_text", logging.WARNING))
    assert keep(record("tformer", logging.ERROR))  # an error may be this rank's own
    assert keep(record("lightning.pytorch.strategies.ddp", logging.WARNING))  # a library's: maybe this rank's
    assert keep(record("torch.distributed", logging.WARNING))
    assert keep(record("tformers_elsewhere", logging.WARNING))  # a prefix is not a package


def test_warnings_keep_their_level_and_info_is_plain():
    fmt = ConsoleFormatter("%(message)s")
    assert fmt.format(record("tformer", logging.INFO, "Run directory: x")) == "Run directory: x"
    assert fmt.format(record("tformer", logging.WARNING, "careful")) == "WARNING: careful"


def test_the_hydra_config_filters_only_the_extra_ranks_console():
    job_logging = yaml.safe_load((ROOT / "conf" / "hydra" / "default.yaml").read_text())["job_logging"]
    assert job_logging["filters"]["extra_rank"]["()"] == "training.console.ExtraRankConsole"
    assert job_logging["handlers"]["console"]["filters"] == "${rank_zero:[],[extra_rank]}"
