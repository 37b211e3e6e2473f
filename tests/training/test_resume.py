"""Resuming needs nothing but the checkpoint (training/resume.py): checkpoints keep their run's overrides, and
train.py's arguments become those overrides followed by the user's. As users run it:
tests/e2e/test_trust.py::test_resuming_needs_nothing_but_the_checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import OmegaConf

from training.resume import OVERRIDES_KEY, RunOverrides, announce, carried, resume_argv, saved_overrides

RUN = ["experiment=shakespeare_char_cpu", "model.n_layer=2", "trainer.max_steps=63"]


def checkpoint(path: Path, overrides: list[str] | None) -> Path:
    ckpt = {"state_dict": {"w": torch.zeros(2)}, "global_step": 50, "tformer_family": "gpt"}
    if overrides is not None:
        ckpt[OVERRIDES_KEY] = overrides
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def test_checkpoints_keep_the_runs_overrides_but_not_secrets_nor_the_invocation():
    invocation = ["ckpt_path=/a/last.ckpt", "+api_key=abc", "hydra.run.dir=/x", "trust_checkpoint=true"]
    callback = RunOverrides([*RUN, *invocation])
    ckpt: dict = {}
    callback.on_save_checkpoint(None, None, ckpt)
    assert ckpt[OVERRIDES_KEY] == RUN
    assert carried(["+db.password=p", "data.tokenizer=gpt2"]) == ["data.tokenizer=gpt2"]


def test_the_checkpoints_overrides_come_first_and_the_users_replace_them(tmp_path):
    ckpt = checkpoint(tmp_path / "last.ckpt", RUN)
    assert resume_argv([f"ckpt_path={ckpt}"]) == [*RUN, f"ckpt_path={ckpt}"]
    longer = resume_argv([f"ckpt_path={ckpt}", "trainer.max_steps=100"])
    assert longer == [*RUN[:2], f"ckpt_path={ckpt}", "trainer.max_steps=100"]
    other = resume_argv(["-m", f"ckpt_path={ckpt}", "+model.n_layer=4"])  # + or not: the same key
    assert other == ["experiment=shakespeare_char_cpu", "trainer.max_steps=63", "-m", f"ckpt_path={ckpt}",
                     "+model.n_layer=4"]  # fmt: skip
    assert resume_argv(["model.n_layer=2"]) == ["model.n_layer=2"]  # no ckpt_path: nothing to do


def test_older_checkpoints_take_their_runs_hydra_overrides(tmp_path):
    run = tmp_path / "run"
    ckpt = checkpoint(run / "checkpoints" / "last.ckpt", None)
    assert saved_overrides(ckpt) is None
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml([*RUN, "+my_token=t"]))
    assert saved_overrides(ckpt) == RUN


def test_a_missing_or_unreadable_checkpoint_is_left_to_the_checks(tmp_path):
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    for path in (tmp_path / "nope.ckpt", tmp_path / "junk.ckpt"):
        assert resume_argv([f"ckpt_path={path}", "seed=1"]) == [f"ckpt_path={path}", "seed=1"]


def test_a_resumed_run_says_which_settings_it_took(tmp_path, caplog, hydra_job):
    hydra_job(["model.n_layer=2", "trainer.max_steps=100"], multirun=False)
    with caplog.at_level(logging.INFO, logger="tformer"):
        announce({OVERRIDES_KEY: RUN, "global_step": 50}, "/r/last.ckpt")
    assert "Resuming /r/last.ckpt (step 50) with its run's settings: model.n_layer=2" in caplog.text
    assert "trainer.max_steps=63" not in caplog.text  # the user's own trainer.max_steps replaced it
