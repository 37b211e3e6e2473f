"""Which recipe `make train` runs on this machine: the GPU recipe where CUDA is present, the CPU one otherwise.

python -m training.recipe [auto|gpu|cpu]   prints the experiment to run (stdout) and why (stderr)
"""

from __future__ import annotations

import sys

from errors import ConfigError

RECIPES = {
    "gpu": ("nanogpt_shakespeare_char", "nanoGPT's Shakespeare recipe: 5000 steps of gpt_small, val loss ~1.47"),
    "cpu": (
        "shakespeare_char_modern",
        "the 2-core CPU recipe: 500 steps of a 0.8M modern GPT (Muon, RoPE, ReLU², QK-norm), val ~1.67 in ~70 s",
    ),
}


def pick(requested: str, cuda: bool) -> tuple[str, str]:
    """(experiment, the reason in words) for RECIPE=auto|gpu|cpu on a machine with or without CUDA."""
    if requested not in ("auto", *RECIPES):
        raise ConfigError(f"RECIPE={requested} is unknown: use auto, gpu or cpu")
    kind = requested if requested != "auto" else ("gpu" if cuda else "cpu")
    other = "cpu" if kind == "gpu" else "gpu"
    why = f"RECIPE={requested}" if requested != "auto" else ("a CUDA GPU is present" if cuda else "no CUDA GPU here")
    experiment, what = RECIPES[kind]
    return experiment, f"{why}: experiment={experiment}, {what} (the other one: make train RECIPE={other})"


if __name__ == "__main__":
    import torch

    try:
        experiment, reason = pick(sys.argv[1] if len(sys.argv) > 1 else "auto", torch.cuda.is_available())
    except ValueError as err:
        sys.exit(str(err))
    print(f"make train: {reason}", file=sys.stderr)
    print(experiment)
