"""Sample text from a GPT checkpoint: `python sample.py ckpt_path=... prompt="ROMEO:" num_samples=3`."""

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="sample")
def main(cfg: DictConfig) -> None:
    import torch

    from lab.checkpoint import load_module

    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    module = load_module(cfg.ckpt_path, "gpt", device=device)
    samples = module.sample(
        str(cfg.prompt),
        num_samples=cfg.num_samples,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        seed=cfg.seed,
    )
    for i, text in enumerate(samples):
        sys.stdout.write(f"--- sample {i} ---\n{text}\n")


if __name__ == "__main__":
    main()
