"""GPTLitModule with model.init_from: GPT-2 weights loaded when a run starts, never again from a checkpoint."""

from __future__ import annotations

import shutil

import lightning as L
import pytest
import torch

from lightning_modules.gpt import GPTLitModule
from models.gpt import GPTConfig
from training.checkpoint import load_module

transformers = pytest.importorskip("transformers")

TOKENIZER = {"kind": "char", "chars": "abcdefghij\n"}  # 11 symbols


def test_a_new_run_loads_the_weights_and_its_checkpoint_does_not_need_them(tmp_path):
    torch.manual_seed(0)
    hf_cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=11, n_positions=16,
                                     bos_token_id=0, eos_token_id=0)  # fmt: skip
    hf = transformers.GPT2LMHeadModel(hf_cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0.0, 0.3)
    hf_dir = tmp_path / "tiny-gpt2"
    hf.save_pretrained(hf_dir)
    cfg = GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0, init_from=str(hf_dir))
    module = GPTLitModule(model=cfg, tokenizer=TOKENIZER).eval()
    idx = torch.randint(0, 11, (2, 16))
    with torch.no_grad():
        expected = hf(idx).logits
        torch.testing.assert_close(module(idx)[0], expected, rtol=1e-5, atol=1e-5)
    assert module.hparams.model["init_from"] == str(hf_dir) and module.hparams.model["activation"] == "gelu_tanh"

    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    shutil.rmtree(hf_dir)  # the checkpoint alone rebuilds the model: init_from is not read again
    loaded = load_module(tmp_path / "m.ckpt", "gpt")
    with torch.no_grad():
        torch.testing.assert_close(loaded(idx)[0], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(OSError, match=r"model.init_from=.*tiny-gpt2: no GPT2LMHeadModel could be loaded"):
        GPTLitModule(model=cfg, tokenizer=TOKENIZER)  # a new run does read it
