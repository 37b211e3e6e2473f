"""conf/ablation and sweeps/ablations: every variant of the study composes on the CPU recipe, changes what it names
and nothing else."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from tests.training.conftest import ROOT
from training.checks import check_run

SWEEP = OmegaConf.load(ROOT / "sweeps" / "ablations.yaml")
VARIANTS = [v.strip() for v in str(SWEEP.hydra.sweeper.params.ablation).split(",")]
# what each variant changes against the baseline: (model field or optim.name, value)
CHANGES = {
    "rope": {"positions": "rope"}, "rmsnorm": {"normalization": "rmsnorm"}, "qk_norm": {"qk_norm": True},
    "swiglu": {"activation": "swiglu"}, "relu2": {"activation": "relu2"}, "gqa": {"n_kv_head": 2},
    "untied": {"tie_embeddings": False}, "muon": {"optim.name": "muon"},
}  # fmt: skip


def build(hydra_job, variant: str):
    cfg = hydra_job(["sweeps=ablations", f"ablation={variant}"], multirun=False)
    model_cfg, _, _ = check_run(cfg)
    return cfg, dataclasses.replace(model_cfg, vocab_size=65)


def test_the_sweep_runs_every_variant_the_study_names():
    assert VARIANTS == ["baseline", *CHANGES, "winners"]
    assert str(SWEEP.hydra.sweeper.params.seed) == "1,2,3"
    assert str(SWEEP.hydra.sweeper.params["ablations.budget"]) == "steps,time"


@pytest.mark.parametrize("variant", list(CHANGES))
def test_each_variant_changes_only_what_it_names(hydra_job, variant):
    base_cfg, base = build(hydra_job, "baseline")
    cfg, model = build(hydra_job, variant)
    assert (cfg.trainer.max_steps, cfg.data.batch_size, cfg.optim.lr) == (1250, 32, 2e-3)  # the CPU recipe
    changed = {f.name: getattr(model, f.name) for f in dataclasses.fields(model) if getattr(model, f.name) !=
               getattr(base, f.name)}  # fmt: skip
    if cfg.optim.name != base_cfg.optim.name:
        changed["optim.name"] = cfg.optim.name
    assert changed == CHANGES[variant]


def test_winners_combine_switches_of_the_study(hydra_job):
    _, base = build(hydra_job, "baseline")
    cfg, model = build(hydra_job, "winners")
    changed = {f.name: getattr(model, f.name) for f in dataclasses.fields(model) if getattr(model, f.name) !=
               getattr(base, f.name)}  # fmt: skip
    singles = {k: v for variant in CHANGES.values() for k, v in variant.items()}
    assert len(changed) >= 2 and all(singles.get(k) == v for k, v in changed.items())


def test_the_time_budget_bounds_the_run_by_the_clock(hydra_job):
    cfg = hydra_job(["sweeps=ablations", "ablations.budget=time"], multirun=False)
    assert cfg.trainer.max_time == cfg.ablations.time and cfg.trainer.max_steps == 1_000_000_000
    cfg = hydra_job(["sweeps=ablations_smoke", "ablations.budget=steps"], multirun=False)
    assert cfg.trainer.max_time is None and cfg.trainer.max_steps == 4


def test_the_modern_preset_is_the_winners_on_a_shorter_schedule(hydra_job):
    _, base = build(hydra_job, "baseline")
    _, winners = build(hydra_job, "winners")
    cfg = hydra_job(["experiment=shakespeare_char_modern"], multirun=False)
    model, _, _ = check_run(cfg)
    assert dataclasses.replace(model, vocab_size=65) == winners
    changed = {f.name for f in dataclasses.fields(winners) if getattr(winners, f.name) != getattr(base, f.name)}
    assert changed == {"positions", "activation", "qk_norm"}  # docs/ablations.md: Muon, RoPE, ReLU², QK-norm
    assert (cfg.optim.name, cfg.optim.muon_lr, cfg.data.batch_size, cfg.data.block_size) == ("muon", 0.03, 32, 64)
    assert (cfg.trainer.max_steps, cfg.trainer.val_check_interval, cfg.trainer.limit_val_batches) == (500, 100, 10)
