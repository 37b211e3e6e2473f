"""What a new user sees and gets: a quiet console, a validation at the end of every run, TensorBoard and W&B
together, a resumed run continuing its W&B run, the debug group and the project's --help."""

from __future__ import annotations

import csv
import glob
from pathlib import Path

import pytest
import torch

from tests import zygote
from tests.e2e.conftest import TINY, run_dirs

MANY = [a for a in TINY if a != "logger=csv"] + ["logger=many", "logger.wandb.project=t"]


def metrics(run: Path) -> list[dict]:
    with open(run / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """3 steps with validations every 250: shorter than the interval. W&B, TensorBoard and CSV loggers."""
    import os
    import sys

    from tests.e2e.conftest import ROOT

    logs = tmp_path_factory.mktemp("logs")
    args = [*MANY, "trainer.max_steps=3", "trainer.val_check_interval=250"]
    env = {**os.environ, "TFORMER_LOG_DIR": str(logs), "HYDRA_FULL_ERROR": "0"}
    proc = zygote.run([sys.executable, "train.py", *args], env=env, cwd=ROOT, tmp=logs / "procs", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = sorted((logs / "train" / "runs").glob("*"))
    return run, proc.stdout + proc.stderr, logs


@pytest.mark.slow
def test_the_console_says_each_thing_once_without_adverts(short_run):
    run, output, _ = short_run
    lines = [line for line in output.splitlines() if line.strip()]
    assert output.count("Seed set to") == 1 and output.count("GPU available:") == 1  # not printed twice
    assert "litlogger" not in output and "anonymous setting" not in output and "LeafSpec" not in output
    assert "Epoch 0/" not in output and "step" in output  # progress in optimizer steps
    assert "├── n_layer: 2" in output  # the resolved sizes as a tree
    assert f"Outputs in {run}" in output and "wandb leet" in output and "wandb sync" in output
    assert "Run history" not in output  # W&B's own end-of-run summary stays quiet
    assert not [line for line in lines if line.startswith("INFO:")]  # Lightning's own handler is gone
    assert "Total FLOPs" not in output and "limit_val_batches=1.0" not in output  # framework lines that say nothing
    assert "it/s]" not in output  # no terminal here: plain lines, no bar redrawn
    assert "step 3/3 (100%)" in output and "Generation metrics: 2 samples in" in output
    assert "Model GPT (n_layer=2, n_head=2, n_embd=32): " in output  # gpt_nano's sizes overridden: no preset name


@pytest.mark.slow
def test_a_run_shorter_than_the_interval_validates_at_its_end(short_run):
    run, output, _ = short_run
    rows = metrics(run)
    assert [int(r["step"]) for r in rows if r["val/loss"]] == [2]  # once, after the last (third) step
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert "validating once, at its end" in output


@pytest.mark.slow
def test_logger_many_writes_tensorboard_wandb_and_csv(short_run):
    run, _, _ = short_run
    assert glob.glob(str(run / "tensorboard" / "events.out.tfevents.*"))
    assert glob.glob(str(run / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert (run / "csv" / "metrics.csv").is_file()


@pytest.mark.slow
def test_a_resumed_run_continues_its_wandb_run(short_run, run_script, tmp_path):
    run, _, _ = short_run
    run_id = (run / "wandb_run_id").read_text().strip()
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["tformer_wandb_run_id"] == run_id
    run_script("train.py", *MANY, f"ckpt_path={last}", "trainer.max_steps=5")
    (resumed,) = run_dirs(tmp_path)
    (wandb_dir,) = glob.glob(str(resumed / "wandb" / "offline-run-*"))
    assert wandb_dir.endswith(f"-{run_id}")  # the same W&B run, continued
    assert (resumed / "wandb_run_id").read_text().strip() == run_id


@pytest.mark.slow
def test_help_lists_the_groups_sweeps_and_common_commands(run_script):
    out = run_script("train.py", "--help").output
    for text in (
        "debug: default, fdr, overfit, profiler",
        "logger: csv, many, tensorboard, wandb",
        "sweeps:",
        "hydra/launcher: basic (default), slurm",
        "python train.py debug=default",
        "--cfg job --resolve",
    ):
        assert text in out, text  # fmt: skip
    assert len(out.splitlines()) < 50  # not Hydra's stock 130 lines of config


@pytest.mark.parametrize("debug", ["default", "fdr", "overfit", "profiler", "translation"])
def test_every_debug_option_composes(debug):
    from tests.e2e.test_translate import compose

    cfg = compose(f"debug={debug}")
    assert cfg.trainer.max_steps <= 100 and cfg.logger.wandb.offline is True
    assert cfg.cpu_time_check is True and cfg.cpu_expected_s <= 30  # a far bigger model is said before it starts
    assert cfg.optim.warmup_steps <= cfg.trainer.max_steps  # no warning caused by the preset itself
    if debug == "translation":
        assert cfg.model.name == "seq2seq_small" and cfg.data.limit == 200
    else:
        assert cfg.data.batch_size == 4 and cfg.callbacks.generation.num_samples == 4


def test_early_stopping_watches_the_checkpoint_monitor():
    from tests.e2e.test_translate import compose

    cfg = compose("callbacks=early_stopping")
    assert cfg.callbacks.early_stopping.monitor == "val/loss" and cfg.callbacks.early_stopping.mode == "min"
    assert "model_checkpoint" in cfg.callbacks and "generation" in cfg.callbacks  # the defaults stay
    bleu = compose("experiment=translate_multi30k", "callbacks=early_stopping")
    assert bleu.callbacks.early_stopping.monitor == "val/bleu" and bleu.callbacks.early_stopping.mode == "max"
