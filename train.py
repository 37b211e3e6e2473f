"""Train a transformer: `python train.py model=gpt_small data=shakespeare_char trainer=gpu`."""

import gc
import os
import time
from pathlib import Path

gc.disable()  # until the training loop starts (training/startup.py, frozen_start_up: 0.45 s of a 3 s start)

# "Time from launch" (perf/elapsed, the target callback) counts from here, unless a launcher set it before.
LAUNCH = "TFORMER_LAUNCH_TIME"
os.environ.setdefault(LAUNCH, repr(time.time()))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import training.config  # noqa: E402,F401  (registers the config resolvers)

os.environ.setdefault("TFORMER_ROOT", str(Path(__file__).resolve().parent))  # conf/train.yaml finds sweeps/ here
_jobs_started = 0


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from training.cli import user_errors
    from training.run import train
    from training.safe_load import trust_checkpoints
    from training.sweep import run_job

    global _jobs_started
    if _jobs_started:  # the next job of a multirun is launched now
        os.environ[LAUNCH] = repr(time.time())
    _jobs_started += 1
    with user_errors():  # bad input: one line, exit 1 (HYDRA_FULL_ERROR=1 shows the traceback)
        trust_checkpoints(bool(cfg.get("trust_checkpoint", False)))  # checkpoints are data unless trusted
        return run_job(cfg, train)  # in a multirun, a failing job is recorded and the sweep goes on


if __name__ == "__main__":
    import sys

    from training.hydra_errors import explain_unknown_keys

    explain_unknown_keys()  # a misspelt key: "did you mean ...", one line
    if any(a.startswith("ckpt_path=") for a in sys.argv[1:]):  # resuming: the checkpoint run's overrides first
        from training.resume import resume_argv

        sys.argv = sys.argv[:1] + resume_argv(sys.argv[1:])
    main()
    gc.freeze()  # the process ends: Python's last collection at exit need not walk every object again (0.25 s)
