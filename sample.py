"""Sample text from a GPT checkpoint: `python sample.py ckpt_path=... prompt="ROMEO:" num_samples=3`."""

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="sample")
def main(cfg: DictConfig) -> None:
    import torch

    from training.checkpoint import load_module

    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    module = load_module(cfg.ckpt_path, "gpt", device=device)
    options = ("num_samples", "max_new_tokens", "temperature", "top_k", "top_p", "seed")
    samples = module.sample(str(cfg.prompt), **{key: cfg[key] for key in options})
    for i, text in enumerate(samples):
        sys.stdout.write(f"--- sample {i} ---\n{text}\n")


if __name__ == "__main__":
    main()
