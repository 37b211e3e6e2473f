"""optim.name (adamw | adam | sgd) and optim.schedule=step (torch's StepLR, counted in optimizer steps)."""

from __future__ import annotations

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR, StepLR

from lightning_modules.gpt import GPTLitModule
from lightning_modules.optim import OptimConfig, lr_lambda, make_optimizer

MODEL = dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, bias=True)
TOKENIZER = {"kind": "char", "chars": "abcdefghij\n"}


def module(**optim) -> GPTLitModule:
    torch.manual_seed(0)
    return GPTLitModule(model=MODEL, tokenizer=TOKENIZER, optim=optim)


@pytest.mark.parametrize(
    "optim, cls, hyper",
    [
        (dict(), torch.optim.AdamW, dict(betas=(0.9, 0.95), eps=1e-8)),
        (
            dict(name="adam", beta2=0.98, eps=1e-9, weight_decay=0.0),
            torch.optim.Adam,
            dict(betas=(0.9, 0.98), eps=1e-9),
        ),
        (dict(name="sgd", lr=5.0, weight_decay=0.0), torch.optim.SGD, dict(initial_lr=5.0, momentum=0.0)),
        (dict(name="sgd", momentum=0.9, weight_decay=1e-4), torch.optim.SGD, dict(momentum=0.9)),
    ],
)
def test_configure_optimizers_builds_the_named_optimizer(optim, cls, hyper):
    m = module(**optim)
    opt = m.configure_optimizers()["optimizer"]
    assert type(opt) is cls
    decay, no_decay = opt.param_groups
    assert {k: decay[k] for k in hyper} == hyper
    assert decay["weight_decay"] == m.optim_cfg.weight_decay and no_decay["weight_decay"] == 0.0
    assert all(p.dim() < 2 for p in no_decay["params"])  # biases and norms never decay


def test_cuda_optimizers_are_fused_where_torch_has_kernels():
    model = module().model
    assert make_optimizer(model, OptimConfig(name="adamw"), device_type="cuda").defaults["fused"] is True
    assert make_optimizer(model, OptimConfig(name="adam"), device_type="cuda").defaults["fused"] is True
    assert not make_optimizer(model, OptimConfig(name="adam"), device_type="cpu").defaults.get("fused")


def test_adam_decay_is_coupled_l2_and_adamw_decoupled():
    """One step from a zero gradient: AdamW shrinks a weight by lr·wd, Adam's L2 term moves it by lr (Adam's
    normalised step of the gradient wd·w)."""
    results = {}
    for name in ("adamw", "adam"):
        w = torch.nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            w.weight.fill_(2.0)
        opt = make_optimizer(w, OptimConfig(name=name, lr=0.1, weight_decay=0.5), device_type="cpu")
        w.weight.grad = torch.zeros_like(w.weight)
        opt.step()
        results[name] = w.weight.item()
    assert results["adamw"] == pytest.approx(2.0 * (1 - 0.1 * 0.5))
    assert results["adam"] == pytest.approx(2.0 - 0.1, rel=1e-4)


@pytest.mark.parametrize("step_size, gamma", [(1, 0.95), (3, 0.5)])
def test_step_schedule_equals_torch_steplr(step_size, gamma):
    cfg = OptimConfig(lr=5.0, schedule="step", step_size=step_size, gamma=gamma, warmup_steps=0)
    ours_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    ours, ref = LambdaLR(ours_opt, lr_lambda(cfg, 100)), StepLR(ref_opt, step_size=step_size, gamma=gamma)
    seen = []
    for _ in range(10):
        seen.append(ours_opt.param_groups[0]["lr"])
        assert seen[-1] == pytest.approx(ref_opt.param_groups[0]["lr"])
        ours_opt.step(), ref_opt.step()
        ours.step(), ref.step()
    assert seen[0] == 5.0 and seen[step_size] == pytest.approx(5.0 * gamma)


def test_step_schedule_after_a_warmup():
    f = lr_lambda(OptimConfig(schedule="step", step_size=10, gamma=0.5, warmup_steps=4), 100)
    assert f(0) == pytest.approx(1 / 5) and f(4) == 1.0 and f(9) == 1.0 and f(10) == 0.5 and f(25) == 0.25


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(name="lamb"), r"optim.name='lamb' is unknown; choose one of \('adamw', 'adam', 'sgd', 'muon'\)"),
        (dict(schedule="step"), r"optim.schedule=step needs optim.step_size.*got None"),
        (dict(schedule="step", step_size=0), r"optim.schedule=step needs optim.step_size"),
        (dict(schedule="step", step_size=5, gamma=1.5), r"optim.gamma must be in \(0, 1\]"),
        (dict(name="sgd", momentum=-0.1), r"optim.momentum must be >= 0"),
    ],
)
def test_bad_optimizer_settings_name_the_field(kw, message):
    with pytest.raises(ValueError, match=message):
        OptimConfig(**kw)


def test_muon_needs_torch_2_9(monkeypatch):
    monkeypatch.delattr(torch.optim, "Muon")
    with pytest.raises(ValueError, match=r"^optim.name=muon needs torch >= 2.9 \(torch.optim.Muon\); this is torch "):
        OptimConfig(name="muon")
    OptimConfig(name="adamw")  # the others do not need it
