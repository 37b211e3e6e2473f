"""GPT-2 weights through Hugging Face transformers: a tiny random GPT2LMHeadModel saved locally must give the
project's GPT exactly its logits (nothing is downloaded)."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

from models import pretrained
from models.gpt import GPT, GPTConfig
from models.pretrained import convert_gpt2_state_dict, load_gpt2

transformers = pytest.importorskip("transformers")

SIZES = dict(n_layer=2, n_head=2, n_embd=16)
VOCAB, POSITIONS = 97, 32


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A random GPT2LMHeadModel with every weight (LayerNorms and biases too) far from its init, saved locally."""
    torch.manual_seed(0)
    hf_cfg = transformers.GPT2Config(**SIZES, vocab_size=VOCAB, n_positions=POSITIONS, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(hf_cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    path = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    model.save_pretrained(path)
    return path


def hf_logits(path, idx: torch.Tensor) -> torch.Tensor:
    model = transformers.GPT2LMHeadModel.from_pretrained(path).eval()
    with torch.no_grad():
        return model(idx).logits


def project_gpt(path, **kw) -> GPT:
    cfg = GPTConfig(
        **{**SIZES, "vocab_size": VOCAB, "block_size": POSITIONS, "dropout": 0.0, "init_from": str(path), **kw}
    )
    model = GPT(cfg)
    load_gpt2(model)
    return model.eval()


def test_logits_equal_the_hugging_face_model(hf_dir):
    idx = torch.randint(0, VOCAB, (3, POSITIONS), generator=torch.Generator().manual_seed(1))
    model = project_gpt(hf_dir)
    with torch.no_grad():
        ours = model(idx)[0]
    expected = hf_logits(hf_dir, idx)
    assert expected.abs().max() > 1.0  # far from the tiny logits of an untrained init
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert model.lm_head.weight is model.transformer.wte.weight  # still tied after loading
    # the tanh GELU matters: the exact GELU (nanoGPT's) gives other logits
    exact = GPT(model.config)
    exact.load_state_dict(model.state_dict())
    for block in exact.transformer.h:
        block.mlp.act = torch.nn.GELU()
    with torch.no_grad():
        assert not torch.allclose(exact.eval()(idx)[0], expected, rtol=1e-5, atol=1e-5)


def test_a_shorter_block_size_crops_the_positions(hf_dir):
    idx = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(2))
    model = project_gpt(hf_dir, block_size=10)
    assert model.transformer.wpe.weight.shape == (10, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], hf_logits(hf_dir, idx), rtol=1e-5, atol=1e-5)


def test_init_from_sets_gpt2_architecture_and_named_sizes(caplog):
    with caplog.at_level(logging.INFO, logger="tformer"):
        cfg = GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, bias=False, init_from="gpt2-xl")
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size) == (48, 25, 1600, 256)
    assert cfg.vocab_size == 65  # the data's: load_gpt2 refuses anything but GPT-2's 50257 (below)
    assert (cfg.bias, cfg.activation, cfg.norm, cfg.positions, cfg.tie_embeddings) == (
        True,
        "gelu_tanh",
        "pre",
        "learned",
        True,
    )
    assert "n_layer: 6 -> 48" in caplog.text and "bias: False -> True" in caplog.text
    bpe = dataclasses.replace(cfg, vocab_size=50257)  # what train.py does once the data is set up: validated again
    assert (bpe.n_layer, bpe.activation, bpe.vocab_size) == (48, "gelu_tanh", 50257)
    assert 1.55e9 < bpe.num_params() < 1.56e9  # GPT-2 XL: 1558M
    with pytest.raises(ValueError, match=r"model.block_size=2048 exceeds the 1024 positions of model.init_from=gpt2"):
        GPTConfig(block_size=2048, init_from="gpt2")
    assert GPTConfig(**cfg.to_dict()) == cfg  # a checkpoint's plain values rebuild the same config


def test_mismatched_sizes_are_named_before_anything_is_copied(hf_dir):
    with pytest.raises(ValueError, match=r"model.n_layer=3 \(the weights have 2\).*model.vocab_size=65 \(the weights "
                       r"have 97\).*data=shakespeare_bpe"):  # fmt: skip
        project_gpt(hf_dir, n_layer=3, vocab_size=65)
    with pytest.raises(ValueError, match=r"model.block_size=64 \(the weights have 32 positions\)"):
        project_gpt(hf_dir, block_size=64)


def test_a_missing_checkpoint_says_how_to_load_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="HF_HUB_OFFLINE=1"):
        project_gpt(tmp_path / "nowhere")


def test_conversion_transposes_conv1d_weights_and_drops_mask_buffers():
    hf = {
        "transformer.h.0.attn.c_attn.weight": torch.arange(6.0).view(2, 3),  # Conv1D: (in, out)
        "transformer.h.0.attn.c_attn.bias": torch.zeros(3),
        "transformer.h.0.attn.bias": torch.ones(1, 1, 4, 4),  # the causal-mask buffer of old transformers
        "transformer.h.0.attn.masked_bias": torch.tensor(-1e4),
        "transformer.wte.weight": torch.ones(5, 2),
        "transformer.wpe.weight": torch.arange(8.0).view(4, 2),
    }
    out = convert_gpt2_state_dict(hf, block_size=3)
    assert torch.equal(out["transformer.h.0.attn.c_attn.weight"], torch.arange(6.0).view(2, 3).t())
    assert "transformer.h.0.attn.bias" not in out and "transformer.h.0.attn.masked_bias" not in out
    assert out["lm_head.weight"] is out["transformer.wte.weight"]  # the tied head, when stored once
    assert torch.equal(out["transformer.wpe.weight"], torch.arange(6.0).view(3, 2))
    assert set(pretrained.GPT2_SIZES) == {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}
