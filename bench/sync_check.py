"""Where does a training run wait for the GPU? train.py under torch.cuda.set_sync_debug_mode("warn"): every
operation that synchronises the host with the device (.item(), a pageable copy, a nonzero()) prints a warning
with the line that made it, once per line. A step without any lets the CPU queue the next steps while the GPU
computes; one per step serialises Lightning's host work with the GPU's (the char gap of issue 21).

    python bench/sync_check.py experiment=nanogpt_shakespeare_char trainer.max_steps=60 compile=false

Without CUDA it runs train.py unchanged (nothing to report).
"""

from __future__ import annotations

import runpy
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_sync_debug_mode("warn")
        warnings.simplefilter("default")  # once per line that syncs
    sys.argv = [str(ROOT / "train.py"), *argv]
    sys.path.insert(0, str(ROOT))
    runpy.run_path(str(ROOT / "train.py"), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
