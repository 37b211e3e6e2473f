"""What will a run cost? `python estimate.py model=gpt2 data.batch_size=8 data.block_size=1024 [--breakdown]`.

Takes every override train.py takes; prints parameters per component, training FLOPs and a memory
estimate without loading data or allocating the model.
"""

import sys

import hydra
from omegaconf import DictConfig

import lab.config  # noqa: F401  (registers the config resolvers)


@hydra.main(version_base="1.3", config_path="conf", config_name="estimate")
def main(cfg: DictConfig) -> None:
    from lab.estimate import build_estimate, print_estimate

    print_estimate(build_estimate(cfg), breakdown=bool(cfg.breakdown))


if __name__ == "__main__":
    if "--breakdown" in sys.argv:  # a flag for convenience; Hydra itself only takes key=value overrides
        sys.argv = [a for a in sys.argv if a != "--breakdown"] + ["breakdown=true"]
    main()
