"""Score a checkpoint without retraining: `python eval.py ckpt_path=<run>/checkpoints/best.ckpt [overrides]`.

GPT: loss and perplexity of any split or text (`data.val=held_out.txt`), word accuracy of samples. Seq2seq:
sacreBLEU and chrF of one or several test sets (`data.test=[test2016,test2017]`, `data.test_tsv=[a.tsv,b.tsv]`),
greedy and beam (`beam_size=[1,5]`), hypotheses written beside scores.json. See conf/eval.yaml.
"""

import gc
import os
from pathlib import Path

from omegaconf import DictConfig

import training.config  # noqa: F401  (registers the config resolvers)

os.environ.setdefault("TFORMER_ROOT", str(Path(__file__).resolve().parent))


def hydra_args(argv: list[str]) -> list[str]:
    """Without data=<corpus>, the data config is the training run's: data.* overrides go to Hydra as +data.*."""
    if any(a.startswith(("data=", "data/")) for a in argv):
        return argv
    return [f"+{a}" if a.startswith("data.") else a for a in argv]


def evaluate(cfg: DictConfig) -> None:
    from analysis.evaluate import evaluate as run

    run(cfg)


if __name__ == "__main__":
    gc.disable()  # until the checkpoint and the data are loaded (training/startup.py, frozen_start_up)
    from training.cli import entry_point

    entry_point(evaluate, "eval", argv=hydra_args)
