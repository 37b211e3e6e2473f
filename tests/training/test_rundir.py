"""training/rundir.py: unique run directories, and no run taking over another run's directory."""

from __future__ import annotations

import pytest
import yaml
from omegaconf import OmegaConf

from errors import UserError
from tests.training.conftest import ROOT
from training.rundir import RunDirGuard, check_run_dir, keep_earlier_metrics, save_config


def test_run_and_sweep_directories_end_in_a_per_process_suffix(hydra_job):
    from hydra.core.hydra_config import HydraConfig

    from training.config import RUN_SUFFIX

    hydra_job([], multirun=False)
    run_dir = str(HydraConfig.get().run.dir)
    assert run_dir.endswith(f"_{RUN_SUFFIX}") and len(RUN_SUFFIX) == 6 and int(RUN_SUFFIX, 16) >= 0
    assert run_dir == str(HydraConfig.get().run.dir)  # resolved once per process
    sweep_dirs = [yaml.safe_load((ROOT / "conf" / "hydra" / "default.yaml").read_text())["sweep"]["dir"]]
    for path in (ROOT / "sweeps").glob("*.yaml"):
        dirs = yaml.safe_load(path.read_text()).get("hydra", {}).get("sweep", {})
        sweep_dirs += [dirs["dir"]] if "dir" in dirs else []
    assert len(sweep_dirs) > 5 and all(d.endswith("${now:%Y-%m-%d_%H-%M-%S}_${run_suffix:}") for d in sweep_dirs)


def a_run(path):
    (path / "checkpoints").mkdir(parents=True)
    (path / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    (path / "config.yaml").write_text("seed: 1\n")
    return path


def test_a_directory_holding_another_run_is_refused(tmp_path):
    run = a_run(tmp_path / "run")
    with pytest.raises(UserError, match=r"hydra.run.dir=.*/run already holds another run \(config.yaml, checkpoints\)"):
        check_run_dir(run)
    with pytest.raises(UserError, match="already holds another run"):
        check_run_dir(run, str(tmp_path / "elsewhere" / "last.ckpt"))  # resuming another run: still refused
    check_run_dir(run, str(run / "checkpoints" / "last.ckpt"))  # resuming this run in place
    check_run_dir(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_run_dir(tmp_path / "empty")


def test_the_guard_exits_with_one_line_before_hydra_writes(tmp_path, capsys, monkeypatch):
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    run = a_run(tmp_path / "run")
    config = OmegaConf.create({"hydra": {"run": {"dir": str(run)}}, "ckpt_path": None})
    with pytest.raises(SystemExit) as exit_info:
        RunDirGuard().on_run_start(config)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith(f"Error: hydra.run.dir={run} already holds another run")
    monkeypatch.setenv("LOCAL_RANK", "1")  # an extra DDP rank joins rank zero's directory
    RunDirGuard().on_run_start(config)
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "multirun.yaml").write_text("{}\n")
    with pytest.raises(SystemExit):
        RunDirGuard().on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}}))


def test_config_yaml_claims_the_directory(tmp_path):
    cfg = OmegaConf.create({"seed": 1, "ckpt_path": None})
    path = save_config(cfg, tmp_path / "run")
    assert yaml.safe_load(path.read_text()) == {"seed": 1, "ckpt_path": None}
    with pytest.raises(UserError, match="already holds another run's config.yaml"):
        save_config(OmegaConf.create({"seed": 2, "ckpt_path": None}), tmp_path / "run")
    assert yaml.safe_load(path.read_text())["seed"] == 1  # untouched
    resumed = OmegaConf.create({"seed": 3, "ckpt_path": str(tmp_path / "run" / "checkpoints" / "last.ckpt")})
    assert yaml.safe_load(save_config(resumed, tmp_path / "run").read_text())["seed"] == 3


def test_resuming_in_place_keeps_the_earlier_metrics(tmp_path):
    run = a_run(tmp_path / "run")
    (run / "csv").mkdir()
    (run / "csv" / "metrics.csv").write_text("step,train/loss\n0,4.2\n")
    assert keep_earlier_metrics(run, str(tmp_path / "other.ckpt")) is None  # not in place: nothing to keep
    kept = keep_earlier_metrics(run, str(run / "checkpoints" / "last.ckpt"))
    assert kept == run / "csv" / "metrics.1.csv" and kept.read_text() == "step,train/loss\n0,4.2\n"
    (run / "csv" / "metrics.csv").write_text("step,train/loss\n4,3.9\n")
    assert keep_earlier_metrics(run, str(run / "checkpoints" / "last.ckpt")).name == "metrics.2.csv"


def test_a_slurm_job_that_lightning_requeued_continues_in_its_directory(tmp_path, monkeypatch):
    run = tmp_path / "slurm-7"
    (run / "csv").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 1\n")
    (run / "csv" / "metrics.csv").write_text("step\n0\n")
    with pytest.raises(UserError, match="already holds another run"):
        check_run_dir(run)  # outside SLURM, or without Lightning's hpc checkpoint
    (run / "hpc_ckpt_1.ckpt").write_bytes(b"")
    with pytest.raises(UserError, match="already holds another run"):
        check_run_dir(run)
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_JOB_NAME", "tformer")
    check_run_dir(run)  # the requeued job: Lightning resumes from hpc_ckpt_1.ckpt here
    save_config(OmegaConf.create({"seed": 2}), run)
    assert keep_earlier_metrics(run, None) == run / "csv" / "metrics.1.csv"
    monkeypatch.setenv("SLURM_JOB_NAME", "bash")  # an interactive allocation: Lightning does not resume
    with pytest.raises(UserError, match="already holds another run"):
        check_run_dir(run)
