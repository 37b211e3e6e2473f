"""Checkpoints of every format load as sample.py / translate.py load them, give the outputs recorded when they were
written, and resume training. The fixtures (tests/fixtures/checkpoints, made by make.py there) are kept forever:
a change that breaks old checkpoints fails here instead of at a user.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from lightning_modules.checkpoint_format import FORMAT, migrate
from lightning_modules.gpt import GPTLitModule
from training.checkpoint import load_module, read_checkpoint
from training.families import module_for_family

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"
CASES = [
    ("gpt", "gpt_format0"),  # commit ffb879c: no format key, every parameter twice (also under _forward.)
    ("gpt", "gpt_format1"),
    ("seq2seq", "seq2seq_format0"),  # ffb879c: decoder parts named as models.blocks.Block names them
    ("seq2seq", "seq2seq_format0_old_names"),  # 1248b96: decoder self_attn / ln_2 / ln_3, before the restructuring
    ("seq2seq", "seq2seq_format1"),
]
IDS = [name for _, name in CASES]


@pytest.mark.parametrize("family, name", CASES, ids=IDS)
def test_committed_checkpoints_load_and_give_their_recorded_outputs(family, name):
    expected = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    module = load_module(FIXTURES / f"{name}.ckpt", family)  # what sample.py / translate.py do
    with torch.no_grad():
        if family == "gpt":
            logits = module(torch.tensor([module.tokenizer.encode(expected["input"])]))[0][0, -1]
            text = module.sample(expected["prompt"], num_samples=1, max_new_tokens=12, top_k=1, seed=0)[0]
            assert text == expected["greedy"]
        else:
            logits = module(torch.tensor(expected["src_ids"]), torch.tensor(expected["tgt_in_ids"]))[0, -1]
            assert logits.norm().item() == pytest.approx(expected["logits_norm"], rel=1e-5)
            logits = logits[:16]
            assert module.translate([expected["source"]], beam_size=1) == [expected["greedy"]]
    torch.testing.assert_close(logits, torch.tensor(expected["last_logits"]), rtol=1e-5, atol=1e-6)


def random_batch(family: str, vocab: int) -> dict | tuple:
    g = torch.Generator().manual_seed(0)
    if family == "gpt":
        x = torch.randint(0, vocab, (2, 8), generator=g)
        return x, torch.roll(x, -1, 1)
    ids = torch.randint(3, vocab, (2, 6), generator=g)  # 0, 1, 2: pad, BOS, EOS
    return {"src": ids, "tgt_in": torch.cat([torch.ones(2, 1, dtype=torch.long), ids], 1),
            "tgt_out": torch.cat([ids, torch.full((2, 1), 2)], 1)}  # fmt: skip


@pytest.mark.parametrize("family, name", CASES, ids=IDS)
def test_committed_checkpoints_resume_training(family, name, tmp_path):
    path = FIXTURES / f"{name}.ckpt"
    hparams = read_checkpoint(path)["hyper_parameters"]
    module = module_for_family(family)(**hparams)
    trainer = L.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    batch = random_batch(family, module.config.vocab_size)
    trainer.fit(module, torch.utils.data.DataLoader([batch], batch_size=None), ckpt_path=path)
    assert trainer.global_step == 3  # the 2 saved steps, then one more
    assert all(int(s["step"]) == 3 for s in trainer.optimizers[0].state.values())  # AdamW's state was restored


def test_new_checkpoints_carry_the_format_and_each_parameter_once(tmp_path):
    saved = torch.load(FIXTURES / "gpt_format1.ckpt", weights_only=False)
    module = GPTLitModule(**saved["hyper_parameters"])
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "new.ckpt")
    ckpt = torch.load(tmp_path / "new.ckpt", weights_only=False)
    assert ckpt["tformer_format"] == FORMAT and ckpt["tformer_family"] == "gpt"
    assert set(ckpt["state_dict"]) == set(module.model.state_dict(prefix="model."))
    assert set(ckpt["tformer_rng"]) == {"torch", "cuda"}


def test_old_seq2seq_decoder_names_are_renamed_in_one_pass():
    ckpt = {"state_dict": {f"model.decoder.3.{k}.weight": k for k in ("self_attn", "ln_1", "ln_2", "ln_3", "mlp")}}
    ckpt["state_dict"] |= {"model.encoder.0.ln_2.weight": "enc", "_forward.decoder.3.ln_2.weight": "dup"}
    migrate(ckpt, "seq2seq")
    assert ckpt["state_dict"] == {
        "model.decoder.3.attn.weight": "self_attn",
        "model.decoder.3.ln_1.weight": "ln_1",
        "model.decoder.3.ln_cross.weight": "ln_2",  # the norm before cross-attention
        "model.decoder.3.ln_2.weight": "ln_3",  # the norm before the MLP
        "model.decoder.3.mlp.weight": "mlp",
        "model.encoder.0.ln_2.weight": "enc",  # encoder blocks never changed
    }
    same = {"state_dict": {"model.decoder.0.ln_2.weight": 1, "model.decoder.0.ln_cross.weight": 2}}
    migrate(same, "seq2seq")  # format 0 written after the restructuring: already current, left alone
    assert same["state_dict"] == {"model.decoder.0.ln_2.weight": 1, "model.decoder.0.ln_cross.weight": 2}


def test_a_newer_format_is_refused_naming_the_fix(tmp_path):
    ckpt = torch.load(FIXTURES / "gpt_format1.ckpt", weights_only=False)
    ckpt["tformer_format"] = FORMAT + 1
    torch.save(ckpt, tmp_path / "future.ckpt")
    message = rf"future.ckpt has checkpoint format {FORMAT + 1}, but this tformer-lab reads formats 0 to {FORMAT}"
    with pytest.raises(ValueError, match=message):
        load_module(tmp_path / "future.ckpt", "gpt")
    module = GPTLitModule(**ckpt["hyper_parameters"])
    trainer = L.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match="newer tformer-lab"):  # resuming it fails the same way
        trainer.fit(module, torch.utils.data.DataLoader([random_batch("gpt", 20)], batch_size=None),
                    ckpt_path=tmp_path / "future.ckpt")  # fmt: skip
