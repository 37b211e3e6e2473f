"""What will a run cost? `python estimate.py model=gpt2 data.batch_size=8 data.block_size=1024 [--breakdown]`.

Takes every override train.py takes (it composes conf/train.yaml); prints parameters per component,
training FLOPs and a memory estimate without loading data or allocating the model. Its own options:
  --breakdown (or breakdown=true)  also print the per-matrix (GPT-3 paper style) parameter table
  vocab_size=N                     the vocabulary size, for a data.tokenizer whose size is not known
                                   without loading the data (char on Tiny Shakespeare: 65; gpt2: 50257)
"""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import training.config  # noqa: F401  (registers the config resolvers)

os.environ.setdefault("TFORMER_ROOT", str(Path(__file__).resolve().parent))

OWN_KEYS = ("breakdown=", "vocab_size=")
# No run directory, no log files: estimating writes nothing.
NO_OUTPUTS = ["~hydra", "hydra.run.dir=.", "hydra.output_subdir=null",
              "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]  # fmt: skip


def hydra_args(argv: list[str]) -> list[str]:
    """estimate.py's own options as Hydra additions (+key=value), after train.py's overrides."""
    args = ["breakdown=true" if a == "--breakdown" else a for a in argv]
    return [f"+{a}" if a.startswith(OWN_KEYS) else a for a in args] + NO_OUTPUTS


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from analysis.estimate import build_estimate, print_estimate
    from training.cli import user_errors

    with user_errors():  # bad input: one line, exit 1
        print_estimate(build_estimate(cfg), breakdown=bool(cfg.get("breakdown", False)))


if __name__ == "__main__":
    from training.hydra_errors import explain_unknown_keys

    explain_unknown_keys()  # a misspelt key: "did you mean ...", one line
    sys.argv = sys.argv[:1] + hydra_args(sys.argv[1:])
    main()
