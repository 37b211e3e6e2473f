"""Sample text from a GPT checkpoint: `python sample.py ckpt_path=... prompt=ROMEO: num_samples=3`.

`prompt=` takes any text as it is, commas, colons, quotes and non-ASCII letters included (no Hydra quoting
needed): `python sample.py ckpt_path=... "prompt=ROMEO: Hello, world"`.
"""

import gc
import sys

from omegaconf import DictConfig

from training.cli import entry_point

FREE_TEXT_KEYS = ("prompt",)
OPTIONS = ("num_samples", "max_new_tokens", "temperature", "top_k", "top_p", "seed")


def sample(cfg: DictConfig) -> None:
    import torch

    from training.checkpoint import load_module
    from training.checks import check_sampling
    from training.startup import frozen_start_up

    options = {key: cfg[key] for key in OPTIONS}
    check_sampling(options)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    module = load_module(cfg.ckpt_path, "gpt", device=device)
    with frozen_start_up():  # the collector back on, never walking what start-up built
        samples = module.sample(str(cfg.prompt), **options)
    for i, text in enumerate(samples):
        sys.stdout.write(f"--- sample {i} ---\n{text}\n")


if __name__ == "__main__":
    gc.disable()  # until the checkpoint is loaded (training/startup.py, frozen_start_up)
    entry_point(sample, "sample", free_text=FREE_TEXT_KEYS)
