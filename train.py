"""Train a transformer: `python train.py model=gpt_small data=shakespeare_char trainer=gpu`."""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

import training.config  # noqa: F401  (registers the config resolvers)

os.environ.setdefault("TFORMER_ROOT", str(Path(__file__).resolve().parent))  # conf/train.yaml finds sweeps/ here


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from training.cli import user_errors
    from training.run import train
    from training.sweep import run_job

    with user_errors():  # bad input: one line, exit 1 (HYDRA_FULL_ERROR=1 shows the traceback)
        return run_job(cfg, train)  # in a multirun, a failing job is recorded and the sweep goes on


if __name__ == "__main__":
    main()
