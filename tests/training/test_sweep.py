"""training/sweep.py: a multirun job that fails is recorded and reported; a single run still raises."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from training.sweep import SweepSummary, label_wandb_run, run_job, swept_overrides


def fails(cfg):
    raise ValueError("model.n_embd=30 is not divisible by model.n_head=4")


def test_failed_multirun_job_is_recorded_and_reported_as_inf(hydra_job, caplog):
    cfg = hydra_job(["model.n_head=4", "model.n_embd=30"])
    assert math.isinf(run_job(cfg, fails))
    status = json.loads(Path(cfg.paths.output_dir, "status.json").read_text())
    assert status["status"] == "failed" and status["job"] == 1
    assert status["error"] == "ValueError: model.n_embd=30 is not divisible by model.n_head=4"
    assert "model.n_head=4" in status["overrides"] and "Traceback" in status["traceback"]
    assert "Job failed, the sweep goes on: ValueError" in caplog.text


def test_failed_value_is_configurable(hydra_job):
    cfg = hydra_job(["multirun.failed_value=null"])
    assert run_job(cfg, fails) is None
    cfg = hydra_job(["multirun.continue_on_failure=false"])
    with pytest.raises(ValueError, match="not divisible"):
        run_job(cfg, fails)


def test_single_run_raises(hydra_job, tmp_path):
    cfg = hydra_job([], multirun=False)
    with pytest.raises(ValueError, match="not divisible"):
        run_job(cfg, fails)
    assert not (tmp_path / "run" / "status.json").exists()


def test_extra_rank_raises_even_in_a_multirun(hydra_job, monkeypatch):
    cfg = hydra_job([])
    monkeypatch.setenv("LOCAL_RANK", "1")  # what Lightning's launcher sets for the second process
    with pytest.raises(ValueError):
        run_job(cfg, fails)


def test_completed_job_returns_the_metric(hydra_job):
    cfg = hydra_job([])
    assert run_job(cfg, lambda cfg: 1.25) == 1.25
    assert json.loads(Path(cfg.paths.output_dir, "status.json").read_text())["val_loss"] == 1.25


def test_wandb_run_of_a_multirun_job_is_grouped_named_and_tagged(hydra_job):
    argv = ["train.py", "-m", "data.batch_size=16,32", "model.n_layer=2,4", "seed=1"]
    cfg = hydra_job(["data.batch_size=32", "model.n_layer=2", "seed=1"], argv=argv)
    label_wandb_run(cfg)
    wandb = cfg.logger.wandb
    assert wandb.group == "2030-01-01_00-00-00"  # the multirun directory's name
    assert wandb.name == "shakespeare_char-gpt_small-data.batch_size=32,model.n_layer=2"  # swept keys only
    assert {"batch_size=32", "n_layer=2", "n_embd=384", "n_head=6", "block_size=256"} <= set(wandb.tags)

    cfg = hydra_job(["data.batch_size=32", "logger.wandb.group=sizes-v2"], argv=["train.py", "-m"])
    label_wandb_run(cfg)
    assert cfg.logger.wandb.group == "sizes-v2"


def test_single_run_wandb_is_left_alone(hydra_job):
    cfg = hydra_job(["data.batch_size=32"], multirun=False)
    label_wandb_run(cfg)
    assert cfg.logger.wandb.group is None and cfg.logger.wandb.name == "shakespeare_char-gpt_small"


def test_named_sweep_params_count_as_swept(hydra_job):
    argv = ["train.py", "sweeps=deconstructing"]
    cfg = hydra_job(["sweeps=deconstructing", "deconstructing.model=medium"], argv=argv)
    assert swept_overrides() == ["deconstructing.model=medium"]
    assert cfg.data.batch_size == 32


def test_sweep_summary_lists_every_job(hydra_job, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tformer")
    for num, fn in ((0, lambda cfg: 2.0), (1, fails), (2, lambda cfg: 1.5)):
        run_job(hydra_job([f"seed={num}"], job_num=num), fn)
    sweep_dir = tmp_path / "logs" / "train" / "multiruns" / "2030-01-01_00-00-00"
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}}))
    rows = (sweep_dir / "summary.csv").read_text().splitlines()
    assert rows[0] == "job,status,val_loss,overrides,error"
    expected = [["0", "completed", "2.0"], ["1", "failed", ""], ["2", "completed", "1.5"]]
    assert [r.split(",")[:3] for r in rows[1:]] == expected
    assert "3 job(s), 2 completed, 1 failed" in caplog.text and "best val/loss 1.5000: job 2" in caplog.text


def test_failed_job_marks_its_wandb_run_failed(hydra_job, tmp_path, monkeypatch):
    import wandb

    from tests.wandb_records import read_records

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = hydra_job([])

    def oom_after_wandb_started(cfg):
        wandb.init(project="tformer-lab", dir=str(tmp_path))
        raise RuntimeError("CUDA out of memory (simulated)")

    assert math.isinf(run_job(cfg, oom_after_wandb_started))
    assert wandb.run is None  # finished, so the next job's run is a new one
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    records = read_records(run_file)
    assert [r.exit.exit_code for r in records if r.HasField("exit")] == [1]
    summary = {i.key: i.value_json for r in records if r.HasField("summary") for i in r.summary.update}
    assert "CUDA out of memory (simulated)" in summary["failure"]


def test_a_multirun_in_which_every_job_failed_exits_1(hydra_job, tmp_path, caplog):
    for num in (0, 1):
        run_job(hydra_job([f"seed={num}"], job_num=num), fails)
    sweep_dir = tmp_path / "logs" / "train" / "multiruns" / "2030-01-01_00-00-00"
    with pytest.raises(SystemExit) as exit_info:
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}}))
    assert exit_info.value.code == 1
    assert "Multirun: every job failed (2 of 2)" in caplog.text
    assert [r.split(",")[1] for r in (sweep_dir / "summary.csv").read_text().splitlines()[1:]] == ["failed"] * 2


def test_a_diverged_multirun_job_records_the_line_as_its_reason(hydra_job):
    cfg = hydra_job(["model.n_layer=2"])

    from lightning_modules.callbacks.finite import DivergedError

    line = "training diverged: train/loss is not finite (nan or inf) at step 6 of 12, ..."

    def train(cfg):
        raise DivergedError(line)

    assert run_job(cfg, train) == float("inf")
    status = json.loads(Path(cfg.paths.output_dir, "status.json").read_text())
    assert status["status"] == "failed"
    assert status["error"] == f"DivergedError: {line}"
