"""Gradient clipping under every precision: the gradient the optimizer applies has norm optim.grad_clip on a step
that must clip, and train/grad_norm logs the true (unscaled) norm before clipping.

The applied gradient is read back from the optimizer's state: after the first step AdamW's exp_avg = (1 - beta1) * g
(optim.name=muon: Muon's momentum_buffer = (1 - muon_momentum) * g), whatever path (fused kernel, GradScaler, FSDP
shards) brought g there. FSDP: tests/e2e/test_equivalence.py.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision

import lightning_modules.base as base
from lightning_modules.gpt import GPTLitModule

MODEL = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0, bias=True)
TOKENIZER = {"kind": "char", "chars": "abcdefghij\n"}
BETA1 = 0.9
SCALE = 2.0**10  # the emulated GradScaler's loss scale (CUDA's default is 2**16)

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CPU emulates the GradScaler path)")


class GradNorm(L.Callback):
    """The logged train/grad_norm of each step."""

    def __init__(self):
        self.logged: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.logged.append(float(trainer.callback_metrics["train/grad_norm"]))


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 11, (4, 8), generator=g)
    return x, torch.roll(x, -1, dims=1)


def module(grad_clip: float, **optim) -> GPTLitModule:
    torch.manual_seed(0)
    optim = {"grad_clip": grad_clip, "warmup_steps": 0, "beta1": BETA1, "weight_decay": 0.1, **optim}
    return GPTLitModule(model=MODEL, tokenizer=TOKENIZER, optim=optim)


def unclipped_norm() -> float:
    """The fp32 gradient norm of the batch, computed by hand."""
    m = module(0.0)
    _, loss = m(*batch())
    loss.backward()
    return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in m.parameters()])))


def applied_norm(optimizer: torch.optim.Optimizer) -> float:
    """The norm of the gradient AdamW applied in its first step."""
    state = [optimizer.state[p]["exp_avg"] for g in optimizer.param_groups for p in g["params"]]
    return float(torch.linalg.vector_norm(torch.stack([s.float().norm() for s in state]))) / (1 - BETA1)


def fit_one_step(
    grad_clip: float, *, fused: bool = False, optim: dict | None = None, **trainer_kw
) -> tuple[GPTLitModule, L.Trainer, float]:
    m = module(grad_clip, **(optim or {}))
    norms = GradNorm()
    trainer = L.Trainer(**{
        "accelerator": "cpu", "max_steps": 1, "log_every_n_steps": 1, "logger": False, "enable_checkpointing": False,
        "enable_progress_bar": False, "enable_model_summary": False, "limit_val_batches": 0, "callbacks": [norms],
        **trainer_kw,
    })  # fmt: skip
    loader = torch.utils.data.DataLoader([batch()], batch_size=None)
    if fused:  # the optimizer the project picks on CUDA: fused AdamW (which runs on CPU too)
        make = base.make_optimizer
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(base, "make_optimizer", lambda model, cfg, device_type: make(model, cfg, device_type="cuda"))
            trainer.fit(m, loader)
        optimizer = trainer.optimizers[0]
        assert getattr(optimizer, "adamw", optimizer).defaults["fused"] is True  # optim.name=muon: its AdamW
    else:
        trainer.fit(m, loader)
    (logged,) = norms.logged
    return m, trainer, logged


def fp16_scaler() -> MixedPrecision:
    """16-mixed as on CUDA (fp16 autocast, a GradScaler with loss scale SCALE), emulated on CPU."""
    return MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=SCALE))


@pytest.mark.parametrize(
    "setup",
    [
        dict(precision="32-true"),
        dict(precision="bf16-mixed"),
        dict(plugins=[fp16_scaler()]),
        dict(plugins=[fp16_scaler()], fused=True),
        pytest.param(dict(accelerator="cuda", precision="16-mixed"), marks=CUDA),  # the real thing: fused AdamW
    ],
    ids=["fp32", "bf16-mixed", "16-mixed", "16-mixed-fused-adamw", "cuda-16-mixed"],
)
def test_a_step_that_must_clip_applies_exactly_grad_clip(setup):
    reference = unclipped_norm()
    clip = reference / 10  # this step must clip
    setup = dict(setup)
    if "plugins" in setup:
        setup["plugins"] = [fp16_scaler()]  # a fresh scaler per run
    _, trainer, logged = fit_one_step(clip, **setup)
    optimizer = trainer.optimizers[0]
    if "plugins" in setup:
        assert trainer.precision_plugin.scaler.get_scale() == SCALE  # no overflow: the step was taken
    if setup.get("accelerator") == "cuda":
        assert trainer.optimizers[0].defaults["fused"] is True  # make_optimizer's choice on CUDA
    assert applied_norm(optimizer) == pytest.approx(clip, rel=1e-4)
    tol = 1e-5 if setup.get("precision") == "32-true" else 5e-2  # half-precision forward passes
    assert logged == pytest.approx(reference, rel=tol)  # the true norm, not the loss-scaled one (x SCALE)


@pytest.mark.parametrize("fused", [False, True], ids=["adamw", "fused-adamw"])
def test_a_step_under_the_limit_is_not_clipped_and_never_unscaled_twice(fused):
    reference = unclipped_norm()
    _, trainer, logged = fit_one_step(reference * 10, fused=fused, plugins=[fp16_scaler()])
    assert logged == pytest.approx(reference, rel=5e-2)
    assert applied_norm(trainer.optimizers[0]) == pytest.approx(logged, rel=1e-4)  # unscaled once: not / SCALE


def test_grad_clip_zero_disables_clipping_and_its_log():
    m = module(0.0)
    trainer = L.Trainer(accelerator="cpu", max_steps=1, log_every_n_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(m, torch.utils.data.DataLoader([batch()], batch_size=None))
    assert "train/loss" in trainer.callback_metrics and "train/grad_norm" not in trainer.callback_metrics
    assert applied_norm(trainer.optimizers[0]) == pytest.approx(unclipped_norm(), rel=1e-5)


def test_trainer_gradient_clip_val_is_refused_naming_optim_grad_clip():
    trainer = L.Trainer(accelerator="cpu", max_steps=1, gradient_clip_val=0.5, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"trainer.gradient_clip_val=0.5 .* set optim.grad_clip instead"):
        trainer.fit(module(1.0), torch.utils.data.DataLoader([batch()], batch_size=None))


@pytest.mark.parametrize(
    "setup",
    [dict(precision="32-true"), dict(plugins=[fp16_scaler()]), dict(plugins=[fp16_scaler()], fused=True)],
    ids=["fp32", "16-mixed", "16-mixed-fused-adamw"],
)
def test_muon_clips_its_hidden_matrices_with_the_rest(setup):
    """optim.name=muon: one norm over both kinds of groups, every gradient scaled by the same factor (and unscaled
    once under a GradScaler). Muon's first momentum buffer is (1 - muon_momentum) x the gradient it applied."""
    reference = module(0.0)
    _, loss = reference(*batch())
    loss.backward()
    grads = {n: p.grad for n, p in reference.named_parameters()}
    clip = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads.values()]))) / 10
    momentum = 0.9
    m, trainer, _ = fit_one_step(clip, optim={"name": "muon", "muon_momentum": momentum}, **setup)
    optimizer = trainer.optimizers[0]
    names = {id(p): n for n, p in m.named_parameters()}
    applied = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state[p]
            applied[names[id(p)]] = (
                state["momentum_buffer"] / (1 - momentum) if group["name"] == "muon" else state["exp_avg"] / (1 - BETA1)
            )
    assert sum(1 for n in applied if n.endswith(("c_fc.weight", "c_attn.weight"))) == 4  # Muon's, in the norm
    total = torch.linalg.vector_norm(torch.stack([a.float().norm() for a in applied.values()]))
    assert float(total) == pytest.approx(clip, rel=1e-4)
    tol = dict(rtol=1e-4, atol=1e-7) if setup.get("precision") == "32-true" else dict(rtol=0.1, atol=1e-4)
    for name, a in applied.items():  # the whole gradient scaled by clip / norm, Muon's matrices too
        torch.testing.assert_close(a.float(), grads[name] / 10, **tol, msg=lambda msg, n=name: f"{n}: {msg}")


def test_the_fsdp_check_does_not_import_fsdp(monkeypatch):
    """Importing torch.distributed.fsdp to ask costs about 1 s (sympy, DTensor); no FSDP module can exist
    without it, so the check answers from sys.modules."""
    import sys

    from lightning_modules.base import _is_fsdp

    monkeypatch.delitem(sys.modules, "torch.distributed.fsdp", raising=False)
    assert _is_fsdp(torch.nn.Linear(2, 2)) is False
    assert "torch.distributed.fsdp" not in sys.modules
