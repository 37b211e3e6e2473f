"""One test per assumption training/private_api.py makes about Lightning's and Hydra's private names."""

from __future__ import annotations

import inspect
import os

import lightning as L
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

from training import private_api
from training.distributed import HydraJobLauncher, attach


def test_lightning_is_the_tested_minor_version():
    assert L.__version__.startswith(private_api.TESTED_LIGHTNING + ".")


def test_plain_ddp_starts_ranks_with_the_subprocess_script_launcher():
    trainer = L.Trainer(strategy="ddp", accelerator="cpu", devices=2, logger=False, enable_checkpointing=False)
    assert type(trainer.strategy.launcher) is private_api.SubprocessScriptLauncher


def test_ddp_spawn_uses_a_launcher_that_needs_no_swap():
    trainer = L.Trainer(strategy="ddp_spawn", accelerator="cpu", devices=2, logger=False, enable_checkpointing=False)
    assert isinstance(trainer.strategy.launcher, private_api.SAFE_LAUNCHERS)


def test_subprocess_script_launcher_has_what_hydra_job_launcher_uses():
    launcher = private_api.SubprocessScriptLauncher(_LocalEnv(), num_processes=2, num_nodes=1)
    assert launcher.procs == [] and launcher.num_processes == 2 and launcher.num_nodes == 1
    assert launcher.cluster_environment.main_port == 12910
    assert callable(launcher._check_can_spawn_children)
    params = inspect.signature(private_api.SubprocessScriptLauncher.launch).parameters
    assert list(params)[:3] == ["self", "function", "args"] and "trainer" in params


def test_fit_uses_the_launcher_set_by_replace_launcher():
    class Called(Exception):
        pass

    class Recorder:
        is_interactive_compatible = True

        def launch(self, function, *args, trainer=None, **kwargs):
            raise Called

    trainer = L.Trainer(strategy="ddp", accelerator="cpu", devices=2, logger=False, enable_checkpointing=False)
    private_api.replace_launcher(trainer.strategy, Recorder())
    with pytest.raises(Called):
        trainer.fit(BoringModel())


def test_set_num_threads_if_needed_takes_the_process_count(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # recorded, so that teardown removes what the call sets
    monkeypatch.delenv("OMP_NUM_THREADS")
    threads = torch.get_num_threads()
    try:
        private_api.set_num_threads_if_needed(num_processes=2)  # each of 2 ranks: its share of the CPUs
        assert torch.get_num_threads() == max(1, len(os.sched_getaffinity(0)) // 2)
        assert os.environ["OMP_NUM_THREADS"] == str(torch.get_num_threads())
        torch.set_num_threads(threads)
        private_api.set_num_threads_if_needed(num_processes=2)  # OMP_NUM_THREADS set: left alone
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(threads)


def test_hydra_args_parser_reads_config_flags_and_overrides():
    args, _ = private_api.get_args_parser().parse_known_args(["-m", "--config-dir", "d", "a=1,2", "b=x"])
    assert args.multirun and args.config_dir == "d" and args.overrides == ["a=1,2", "b=x"]


def test_an_unknown_launcher_under_hydra_fails_loudly(hydra_job):
    class NewLauncher(private_api.SubprocessScriptLauncher):  # e.g. a future Lightning's own subclass
        pass

    hydra_job(["trainer=ddp"])
    trainer = L.Trainer(strategy="ddp", accelerator="cpu", devices=2, logger=False, enable_checkpointing=False)
    old = trainer.strategy.launcher
    private_api.replace_launcher(trainer.strategy, NewLauncher(old.cluster_environment, 2, 1))
    with pytest.raises(RuntimeError, match="does not know: under Hydra it could make every extra rank re-run"):
        attach(trainer)
    assert not isinstance(trainer.strategy.launcher, HydraJobLauncher)


class _LocalEnv(L.fabric.plugins.environments.LightningEnvironment):
    @property
    def main_port(self) -> int:
        return 12910
