"""TargetStop: stops at the first validation that reaches the target and records when; or says it never did."""

from __future__ import annotations

import json

import pytest

from lightning_modules.callbacks.target import TargetStop
from tests.lightning_modules.test_measure import column, fit


def test_stops_at_the_first_validation_at_the_target(tmp_path, corpora, cache_dir):
    target = TargetStop(str(tmp_path), target=100.0, save_checkpoint=True)  # any loss is below 100
    trainer, _, rows = fit(tmp_path, corpora, cache_dir, [target], steps=8)
    assert trainer.global_step == 2  # validations every 2 steps: stopped at the first, not at 8
    record = json.loads((tmp_path / "target.json").read_text())
    val = column(rows, "val/loss")
    assert record["reached"] and record["step"] == 2 and record["value"] == pytest.approx(val[0])
    assert 0 < record["elapsed_since_fit_start"] <= record["elapsed_since_launch"]
    assert column(rows, "target/elapsed") == [pytest.approx(record["elapsed_since_launch"])]
    assert column(rows, "target/step") == [2.0]
    assert (tmp_path / "checkpoints" / "target.ckpt").is_file()


def test_a_run_that_never_reaches_it_says_so(tmp_path, corpora, cache_dir):
    target = TargetStop(str(tmp_path), target=0.0)
    trainer, _, rows = fit(tmp_path, corpora, cache_dir, [target], steps=4)
    assert trainer.global_step == 4
    record = json.loads((tmp_path / "target.json").read_text())
    assert not record["reached"] and record["best"] == pytest.approx(min(column(rows, "val/loss")))
    assert record["steps"] == 4 and not column(rows, "target/elapsed")


def test_max_mode_and_bad_mode():
    assert TargetStop("x", target=30, monitor="val/bleu", mode="max")._better(31, 30)
    with pytest.raises(ValueError, match="callbacks.target.mode='up' must be min or max"):
        TargetStop("x", target=1, mode="up")
