"""Train a transformer: `python train.py model=gpt_small data=shakespeare_char trainer=gpu`."""

import hydra
from omegaconf import DictConfig

import lab.config  # noqa: F401  (registers the config resolvers)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from lab.training import train

    return train(cfg)


if __name__ == "__main__":
    main()
