"""OptimConfig checks every field on construction; each message names the `optim.<field>` override."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from lightning_modules.optim import OptimConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("preset", ["gpt", "seq2seq"])
def test_the_presets_pass(preset):
    values = yaml.safe_load((ROOT / "conf" / "optim" / f"{preset}.yaml").read_text())
    assert asdict(OptimConfig(**values)) == values


@pytest.mark.parametrize(
    "field, message",
    [
        ({"lr": 0.0}, "optim.lr=0.0 must be > 0"),
        ({"min_lr": -0.01}, "optim.min_lr=-0.01 must be in [0, optim.lr=0.001]"),
        ({"min_lr": 0.01}, "optim.min_lr=0.01 must be in [0, optim.lr=0.001]"),
        ({"beta1": -0.1}, "optim.beta1=-0.1 must be in [0, 1)"),
        ({"beta2": 1.5}, "optim.beta2=1.5 must be in [0, 1)"),
        ({"beta2": 1.0}, "optim.beta2=1.0 must be in [0, 1)"),
        ({"eps": 0.0}, "optim.eps=0.0 must be > 0"),
        ({"weight_decay": -1e-4}, "optim.weight_decay=-0.0001 must be >= 0"),
        ({"grad_clip": -1.0}, "optim.grad_clip=-1.0 must be > 0 (the gradient norm's limit) or 0 (no clipping)"),
        ({"warmup_steps": -1}, "optim.warmup_steps=-1 must be >= 0"),
        ({"warmup_steps": 1.5}, "optim.warmup_steps=1.5 must be an integer"),
        ({"decay_steps": 0}, "optim.decay_steps=0 must be > 0 (or null: max_steps)"),
        ({"lr": "fast"}, "optim.lr='fast' must be a number"),
        ({"eps": float("nan")}, "optim.eps=nan must be a number"),
        ({"beta2": True}, "optim.beta2=True must be a number"),
        ({"schedule": "linear"}, "optim.schedule='linear' is unknown"),
        ({"muon_lr": 0.0}, "optim.muon_lr=0.0 must be > 0"),
        ({"muon_lr": "fast"}, "optim.muon_lr='fast' must be a number"),
        ({"muon_momentum": 1.0}, "optim.muon_momentum=1.0 must be in [0, 1)"),
        ({"muon_momentum": -0.5}, "optim.muon_momentum=-0.5 must be in [0, 1)"),
        ({"muon_weight_decay": -0.1}, "optim.muon_weight_decay=-0.1 must be >= 0"),
        ({"muon_adjust_lr": "spectral"}, "optim.muon_adjust_lr='spectral' is unknown; choose one of ('original', "),
    ],
)
def test_every_field_is_checked(field, message):
    with pytest.raises(ValueError) as err:
        OptimConfig(**field)
    assert str(err.value).startswith(message)


def test_edges_are_accepted():
    OptimConfig(min_lr=0.0, beta1=0.0, beta2=0.0, weight_decay=0.0, grad_clip=0.0, warmup_steps=0)
    OptimConfig(lr=1e-3, min_lr=1e-3, decay_steps=10)  # min_lr == lr: a flat schedule


@pytest.mark.parametrize("schedule", ["constant", "inverse_sqrt"])
def test_min_lr_above_lr_is_no_error_where_the_schedule_never_decays_to_it(schedule):
    """experiment=finetune_shakespeare: a constant lr 3e-5 under the gpt preset's min_lr 1e-4."""
    OptimConfig(lr=3e-5, min_lr=1e-4, schedule=schedule)
    with pytest.raises(ValueError, match=r"optim.min_lr=-1 must be in \[0, optim.lr=3e-05\]"):
        OptimConfig(lr=3e-5, min_lr=-1, schedule=schedule)
