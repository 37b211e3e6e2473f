"""training/checks.py: everything a run can check before any data work, each message naming the field."""

from __future__ import annotations

import logging

import pytest
import torch

from training.checks import check_backend, check_run, check_sampling
from training.cli import user_error_message

TINY = ["model=gpt_nano", "model.n_layer=2", "model.n_embd=32", "model.n_head=2", "data.block_size=32"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.max_steps=0"], "trainer.max_steps=0: nothing to train"),
        (["trainer.max_steps=-1"], "trainer.max_steps=-1 would train forever: a gpt model trains on an endless"),
        (["trainer.max_steps=-1", "+trainer.max_epochs=3"], "trainer.max_steps=-1 would train forever"),
        (["trainer.max_steps=-5"], "trainer.max_steps=-5 must be an integer >= -1"),
        (["optim.beta2=1.5"], "optim.beta2=1.5 must be in [0, 1)"),
        (["optim.min_lr=-0.01"], "optim.min_lr=-0.01 must be in [0, optim.lr=0.001]"),
        (["+optim.nesterov=true"], "optim.nesterov is not an optimizer setting; known: lr, min_lr"),
        (["seed=abc"], "seed='abc' must be an integer (or null for a random seed)"),
        (["data.block_size=0"], "data.block_size=0 must be a positive integer"),
        (["data.batch_size=-8"], "data.batch_size=-8 must be a positive integer"),
        (["model.attention=flash", "trainer=cpu"], "model.attention=flash needs a CUDA GPU"),
        (["sample.num_samples=-1"], "sample.num_samples=-1 must be an integer >= 0"),
        (["sample.max_new_tokens=0"], "sample.max_new_tokens=0 must be a positive integer"),
        (["model.block_size=16"], "data.block_size=32 is larger than the model's context model.block_size=16"),
        (["model.n_embd=30", "model.n_head=4"], "model.n_embd=30 is not divisible by model.n_head=4"),
        (
            ["optim.name=muon", "trainer=fsdp"],
            "optim.name=muon cannot train under trainer.strategy=lightning.pytorch.strategies.FSDPStrategy: Muon needs",
        ),
        (["optim.name=muon", "trainer=cpu", "+trainer.strategy=fsdp"], "optim.name=muon cannot train under trainer.s"),
    ],
)
def test_bad_settings_fail_before_any_work(hydra_job, overrides, message):
    cfg = hydra_job([*TINY, *overrides], multirun=False)
    with pytest.raises(Exception) as err:
        check_run(cfg)
    assert user_error_message(err.value).startswith(message)  # what the user reads (Hydra's wrapper unwrapped)


@pytest.mark.parametrize("overrides", [[*TINY, "trainer=ddp"], ["model=seq2seq_small"]])
def test_muon_is_accepted_under_ddp_and_for_seq2seq(hydra_job, overrides):
    model_cfg, _, _ = check_run(hydra_job([*overrides, "optim.name=muon"], multirun=False))
    assert model_cfg is not None


def test_an_option_of_another_family_is_named(hydra_job):
    cfg = hydra_job(["model=seq2seq_small", "+model.qk_norm=true"], multirun=False)
    with pytest.raises(ValueError, match=r"model.qk_norm is not an option of Seq2SeqConfig; its options: vocab_size"):
        check_run(cfg)
    cfg = hydra_job(["model=seq2seq_small", "model.positions=rope"], multirun=False)
    with pytest.raises(Exception) as err:
        check_run(cfg)
    assert user_error_message(err.value) == (
        "model.positions='rope' is unknown to the seq2seq model; choose one of ('learned', 'sinusoidal')"
    )


def test_a_missing_checkpoint_is_named(hydra_job):
    with pytest.raises(FileNotFoundError, match=r"ckpt_path=/no/such.ckpt does not exist"):
        check_run(hydra_job([*TINY, "ckpt_path=/no/such.ckpt"], multirun=False))


def test_seq2seq_may_run_by_epochs(hydra_job):
    cfg = hydra_job(["model=seq2seq_small", "trainer.max_steps=-1", "+trainer.max_epochs=3"], multirun=False)
    model_cfg, module_cls, resumed = check_run(cfg)
    assert module_cls.family == "seq2seq" and resumed is None
    cfg = hydra_job(["model=seq2seq_small", "trainer.max_steps=-1"], multirun=False)
    with pytest.raises(ValueError, match="trainer.max_steps=-1 with no trainer.max_epochs has no end"):
        check_run(cfg)


def test_a_warmup_longer_than_the_run_is_named(hydra_job, caplog):
    caplog.set_level(logging.WARNING, logger="tformer")
    check_run(hydra_job([*TINY, "trainer.max_steps=50", "optim.warmup_steps=100"], multirun=False))
    assert "optim.warmup_steps=100 is longer than the run (trainer.max_steps=50)" in caplog.text
    caplog.clear()
    check_run(hydra_job([*TINY, "trainer.max_steps=500", "optim.warmup_steps=100"], multirun=False))
    assert "warmup_steps" not in caplog.text


def test_flash_needs_cuda_and_half_precision(monkeypatch):
    from models.gpt import GPTConfig

    flash = GPTConfig(vocab_size=65, block_size=32, n_layer=1, n_head=2, n_embd=32, attention="flash")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"needs a CUDA GPU with flash-attention kernels \(no CUDA GPU found\)"):
        check_backend(flash, {"accelerator": "auto", "precision": "32-true"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ValueError, match="model.attention=flash needs half precision, got trainer.precision=32-true"):
        check_backend(flash, {"accelerator": "gpu", "precision": "32-true"})
    check_backend(flash, {"accelerator": "gpu", "precision": "bf16-mixed"})
    check_backend(GPTConfig(attention="sdpa"), {"accelerator": "cpu", "precision": "32-true"})


@pytest.mark.parametrize(
    "option, message",
    [
        ({"num_samples": 0}, "num_samples=0 must be a positive integer"),
        ({"max_new_tokens": -5}, "max_new_tokens=-5 must be a positive integer"),
        ({"seed": "abc"}, "seed='abc' must be an integer"),
        ({"temperature": -1.0}, "temperature=-1.0 must be a number >= 0"),
        ({"top_k": 2.5}, "top_k=2.5 must be a positive integer (or null: no top-k filter)"),
        ({"top_k": -3}, "top_k=-3 must be a positive integer (or null: no top-k filter)"),
        ({"top_k": 0}, "top_k=0 must be a positive integer"),
        ({"top_p": 1.5}, "top_p=1.5 must be in (0, 1]"),
    ],
)
def test_sampling_options(option, message):
    options = {"num_samples": 3, "max_new_tokens": 10, "temperature": 0.8, "top_k": 200, "top_p": None, "seed": 1}
    check_sampling(options)
    with pytest.raises(ValueError) as err:
        check_sampling({**options, **option})
    assert str(err.value).startswith(message)


def save_checkpoint(path, *, n_embd: int, step: int) -> None:
    from models.gpt import GPTConfig

    model = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=n_embd, bias=False).to_dict()
    ckpt = {"state_dict": {}, "tformer_family": "gpt", "global_step": step, "hyper_parameters": {"model": model}}
    torch.save(ckpt, path)


def test_a_resumed_run_must_keep_the_checkpoints_sizes(hydra_job, tmp_path):
    save_checkpoint(tmp_path / "last.ckpt", n_embd=64, step=6)
    resume = [f"ckpt_path={tmp_path / 'last.ckpt'}", "trainer.max_steps=10"]
    cfg = hydra_job([*TINY, "model.n_embd=128", *resume], multirun=False)
    with pytest.raises(ValueError, match=r"the checkpoint has model.n_embd=64, but this run has model.n_embd=128"):
        check_run(cfg)
    _, _, saved = check_run(hydra_job([*TINY, "model.n_embd=64", "model.dropout=0.1", *resume], multirun=False))
    assert saved.model["n_embd"] == 64 and saved.wandb_run_id is None  # dropout may change: it shapes no parameter


def test_a_resumed_run_must_keep_the_checkpoints_optimizer(hydra_job, tmp_path):
    """The optimizer state fits only its optimizer (AdamW's would load into SGD's groups without an error)."""
    save_checkpoint(tmp_path / "last.ckpt", n_embd=32, step=6)  # no optim settings saved: adamw, the default
    resume = [*TINY, f"ckpt_path={tmp_path / 'last.ckpt'}", "trainer.max_steps=10"]
    with pytest.raises(ValueError, match=r"was trained with optim.name=adamw, but this run has optim.name=muon: "):
        check_run(hydra_job([*resume, "optim.name=muon"], multirun=False))
    check_run(hydra_job(resume, multirun=False))


def test_a_resumed_run_must_have_steps_left(hydra_job, tmp_path):
    save_checkpoint(tmp_path / "last.ckpt", n_embd=32, step=6)
    for steps in (4, 6):
        cfg = hydra_job([*TINY, f"ckpt_path={tmp_path / 'last.ckpt'}", f"trainer.max_steps={steps}"], multirun=False)
        with pytest.raises(ValueError, match=f"trainer.max_steps={steps} but ckpt_path=.* has already trained 6 steps"):
            check_run(cfg)


def test_module_options_are_the_lightning_modules_arguments():
    from lightning_modules.gpt import GPTLitModule
    from lightning_modules.seq2seq import Seq2SeqLitModule
    from training.checks import check_module_options

    check_module_options({"compile_scope": "blocks"}, GPTLitModule)
    check_module_options({"beam_size": 4, "label_smoothing": 0.0}, Seq2SeqLitModule)
    with pytest.raises(ValueError) as err:
        check_module_options({"foo": 1}, GPTLitModule)
    assert str(err.value) == "module.foo is not an option of the gpt LightningModule (GPTLitModule); its options: " \
                             "compile_mode, compile_scope"  # fmt: skip
    with pytest.raises(ValueError, match="module.tokenizer is not an option"):
        check_module_options({"tokenizer": {}}, GPTLitModule)  # train.py passes it itself
