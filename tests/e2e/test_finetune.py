"""experiment=finetune_shakespeare end to end: nanoGPT's GPT-2 fine-tuning recipe, on a tiny local GPT-2."""

from __future__ import annotations

import csv

import pytest
import torch
import yaml

from tests.e2e.conftest import run_dirs
from tests.e2e.test_sweeps import compose

transformers = pytest.importorskip("transformers")


def test_the_recipe_is_nanogpts():
    cfg = compose(["experiment=finetune_shakespeare"])
    assert cfg.model.init_from == "gpt2-xl" and cfg.model.name == "gpt2_xl" and cfg.model.dropout == 0.0
    assert (cfg.data.name, cfg.data.batch_size, cfg.data.block_size) == ("shakespeare_bpe", 1, 1024)
    assert (cfg.optim.lr, cfg.optim.schedule, cfg.optim.warmup_steps) == (3e-5, "constant", 0)
    assert (cfg.optim.weight_decay, cfg.optim.beta2, cfg.optim.grad_clip) == (0.1, 0.95, 1.0)
    assert (cfg.trainer.max_steps, cfg.trainer.accumulate_grad_batches) == (20, 32)
    assert cfg.trainer.val_check_interval == 5 * 32 and cfg.trainer.limit_val_batches == 40


@pytest.mark.slow
def test_finetune_runs_from_a_local_gpt2_directory(tmp_path, run_script, gpt2_bpe):  # the BPE files: skips without them
    torch.manual_seed(0)
    hf_cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=50257, n_positions=64)
    hf_dir = tmp_path / "tiny-gpt2"
    transformers.GPT2LMHeadModel(hf_cfg).save_pretrained(hf_dir)
    result = run_script(
        "train.py",
        "experiment=finetune_shakespeare",
        f"model.init_from={hf_dir}",
        "model.n_layer=2",
        "model.n_head=2",
        "model.n_embd=16",
        "model.block_size=64",  # the tiny GPT-2's n_positions
        "data.block_size=32",
        "data.batch_size=2",
        "trainer.accelerator=cpu",
        "trainer.max_steps=3",
        "trainer.accumulate_grad_batches=2",
        "trainer.val_check_interval=2",
        "trainer.limit_val_batches=2",
        "trainer.log_every_n_steps=1",
        "logger=csv",
        "sample.num_samples=1",
        "sample.max_new_tokens=5",
        "callbacks.generation.num_samples=0",
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert f"Loaded {hf_dir}" in result.output
    (run,) = run_dirs(tmp_path)
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["init_from"] == str(hf_dir)
    with open(run / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["train/lr/decay"]) for r in rows if r.get("train/lr/decay")] == pytest.approx([3e-5] * 3)
    assert (run / "checkpoints" / "best.ckpt").is_file() and not (run / "checkpoints" / "last.ckpt").exists()
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)
    assert ckpt["hyper_parameters"]["model"]["activation"] == "gelu_tanh"  # GPT-2's, set by init_from
