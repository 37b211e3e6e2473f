"""A Hydra job context without running train.py: HydraConfig set as Hydra sets it inside a (multi)run job."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict, read_write

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hydra_job(tmp_path, monkeypatch):
    """hydra_job(overrides, multirun=True, argv=None) -> the job's task config (no `hydra` node)."""
    from hydra import compose, initialize_config_dir

    import training.config  # noqa: F401  (resolvers)

    monkeypatch.setenv("TFORMER_ROOT", str(ROOT))
    monkeypatch.setenv("TFORMER_LOG_DIR", str(tmp_path / "logs"))

    def make(
        overrides: list[str],
        *,
        multirun: bool = True,
        argv: list[str] | None = None,
        job_num: int = 1,
        hydra_overrides: tuple[str, ...] = (),
    ):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
        sweep_dir = tmp_path / "logs" / "train" / "multiruns" / "2030-01-01_00-00-00"
        with read_write(cfg), open_dict(cfg):
            cfg.hydra.mode = RunMode.MULTIRUN if multirun else RunMode.RUN
            cfg.hydra.sweep.dir = str(sweep_dir)
            cfg.hydra.job.num = job_num
            cfg.hydra.runtime.output_dir = str(sweep_dir / str(job_num) if multirun else tmp_path / "run")
            cfg.hydra.runtime.cwd = str(ROOT)
            mode = ["hydra.mode=MULTIRUN"] if multirun else []
            cfg.hydra.overrides.hydra = [*cfg.hydra.overrides.hydra, *hydra_overrides, *mode]
        HydraConfig.instance().set_config(cfg)
        monkeypatch.setattr("sys.argv", argv or ["train.py", *(["-m"] if multirun else []), *overrides])
        monkeypatch.setattr("__main__.__spec__", None)  # as when run as `python train.py`
        task = copy.deepcopy(cfg)
        with read_write(task), open_dict(task):
            del task["hydra"]
        return task

    yield make
    HydraConfig.instance().cfg = None
    os.environ.pop("LOCAL_RANK", None)
