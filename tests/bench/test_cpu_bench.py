"""bench/cpu.py: nanoGPT's CPU recipe and the project's side by side. The overrides that match both sides'
validation, the ratios, the first-step callback, and (slow) the whole benchmark at tiny sizes (--smoke)."""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import time
from types import SimpleNamespace

import pytest
import torch
import yaml

import bench.cpu as cpu
from bench.cpu import COMPARED, FIRST_STEP, nanogpt_flags, project_overrides, ratios
from bench.first_step import FirstStep
from tests import zygote
from tests.bench.yardstick import nanogpt_anchors
from tests.e2e.conftest import ROOT


def cli(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"smoke": False, "eval_interval": 100, "eval_batches": 20, **kw})


def test_both_sides_validate_at_the_same_cadence_on_batches_of_nanogpts_shape():
    assert nanogpt_flags(cli()) == ["--eval_interval=100", "--eval_iters=20"]
    ov = project_overrides(cli(), "experiment=shakespeare_char_cpu")
    assert {"trainer.val_check_interval=100", "trainer.limit_val_batches=20", "data.val_batch_size=12"} <= set(ov)
    assert {"logger=csv", "callbacks.generation=null", *FIRST_STEP} <= set(ov)  # FIRST_STEP: bench/first_step.py
    assert ov[-1] == "experiment=shakespeare_char_cpu" and not any(o.startswith("trainer.max_steps") for o in ov)


def test_a_recipes_overrides_come_last_and_win_but_smoke_sizes_win_over_them():
    ov = project_overrides(cli(), "experiment=x trainer.val_check_interval=50 optim.lr=3e-3")
    assert ov[-3:] == ["experiment=x", "trainer.val_check_interval=50", "optim.lr=3e-3"]  # Hydra: the last one wins
    smoke = project_overrides(cli(smoke=True, eval_interval=4, eval_batches=2), "experiment=x data.batch_size=64")
    assert smoke.index("data.batch_size=64") < smoke.index("data.batch_size=4") and "data.val_batch_size=4" in smoke
    assert "trainer.max_steps=8" in smoke and "--max_iters=8" in nanogpt_flags(cli(smoke=True))


def test_ratios_are_project_over_nanogpt_and_none_where_a_side_lacks_the_measure():
    nano = {"launch_to_first_step": 3.0, "tokens_per_sec": 16000.0, "time_to_target": 100.0, "final_val": 1.9}
    proj = {"launch_to_first_step": 6.0, "tokens_per_sec": 20000.0, "time_to_target": 80.0, "final_val": 1.71}
    out = ratios({**nano, "wall": 101.5}, {**proj, "wall": 152.25})
    assert set(out) == {key for _, key, _ in COMPARED}
    assert out == pytest.approx(
        {"launch_to_first_step": 2.0, "tokens_per_sec": 1.25, "time_to_target": 0.8, "final_val": 0.9, "wall": 1.5}
    )
    assert ratios({**nano, "time_to_target": None}, proj)["time_to_target"] is None  # never reached: no ratio


def test_first_step_records_time_since_launch_once_after_the_first_optimizer_step(tmp_path, monkeypatch):
    monkeypatch.setenv("TFORMER_LAUNCH_TIME", repr(time.time() - 100))
    callback, module = FirstStep(str(tmp_path)), SimpleNamespace(device=torch.device("cpu"))
    trainer = SimpleNamespace(global_step=0, is_global_zero=True)
    callback.on_train_batch_end(trainer, module, None, None, 0)  # accumulating: no optimizer step done yet
    assert not (tmp_path / "first_step.json").exists()
    trainer.global_step = 1
    callback.on_train_batch_end(trainer, module, None, None, 1)
    record = json.loads((tmp_path / "first_step.json").read_text())
    assert record["step"] == 1 and 100 <= record["elapsed_since_launch"] < 160
    trainer.global_step = 2
    monkeypatch.setenv("TFORMER_LAUNCH_TIME", repr(time.time() - 500))
    callback.on_train_batch_end(trainer, module, None, None, 2)
    assert json.loads((tmp_path / "first_step.json").read_text()) == record  # written once


class FakeBench:
    """Records the order of the sides; each launch's time is its position in that order (a drifting machine)."""

    def __init__(self):
        self.order, self.saved = [], None

    def nanogpt(self, part, recipe, flags, cap, tag=""):
        self.order.append(f"nanoGPT{tag}")
        return SimpleNamespace(lines=len(self.order), wall=100.0 * len(self.order), status="ok")

    def train(self, part, name, overrides, cap):
        self.order.append(name)
        return SimpleNamespace(wall=100.0 * len(self.order), status="ok"), len(self.order)

    def save(self, part, record, table):
        self.saved = (record, table)


def test_rounds_alternate_the_order_and_report_medians(monkeypatch):
    def side(n):  # launch n of the run: slower the later it comes
        return {"steps": 10, "tokens_per_step": 1000, "ms_per_step": 10.0 * n, "launch_to_first_step": n,
                "time_to_target": 5.0 * n, "final_val": 1.5, "val_curve": []}  # fmt: skip

    monkeypatch.setattr(cpu, "parse_nanogpt", lambda n, **kw: side(n))
    monkeypatch.setattr(cpu, "parse_project", lambda n, **kw: side(n))
    bench = FakeBench()
    args = cli(rounds=3, recipe=["experiment=a"], target=1.89, name="t", cap_s=60)
    record = cpu.run(bench, args)
    assert bench.order == ["nanoGPT round 1", "project 1 round 1", "project 1 round 2", "nanoGPT round 2",
                           "nanoGPT round 3", "project 1 round 3"]  # fmt: skip
    nano, (proj,) = record["nanogpt"], record["projects"]
    # nanoGPT ran 1st, 4th and 5th; the project 2nd, 3rd and 6th: medians 4 and 3
    assert (nano["launch_to_first_step"], nano["ms_per_step"], nano["wall"]) == (4, 40.0, 400.0)
    assert (proj["launch_to_first_step"], proj["ms_per_step"], proj["time_to_target"]) == (3, 30.0, 15.0)
    assert proj["tokens_per_sec"] == pytest.approx(1000 * 1000 / 30.0)  # from the median step time
    assert [r["ms_per_step"] for r in proj["rounds"]] == [20.0, 30.0, 60.0]
    assert proj["ratios"]["wall"] == pytest.approx(300.0 / 400.0)
    assert record["rounds"] == 3 and "median of 3 rounds" in bench.saved[1]


def test_one_round_keeps_the_sides_as_measured():
    one = {"ms_per_step": 12.0, "tokens_per_sec": 5.0, "status": "ok"}
    assert cpu.combine([one]) == one


@pytest.fixture
def yardstick():
    return nanogpt_anchors()


@pytest.mark.slow
def test_smoke_runs_nanogpt_then_two_recipes_and_writes_the_comparison(tmp_path, yardstick):
    recipes = ["experiment=shakespeare_char_cpu", "experiment=shakespeare_char_cpu optim.lr=3e-3"]
    cmd = [sys.executable, "bench/cpu.py", "--smoke", "--anchors", str(yardstick), "--name", "race"]
    cmd += [a for r in recipes for a in ("--recipe", r)]
    cmd += ["--results", str(tmp_path / "results"), "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    proc = zygote.run(cmd, env=_env(), cwd=ROOT, tmp=tmp_path / "procs", timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    record = json.loads((tmp_path / "results" / "cpu_race.json").read_text())
    assert record["smoke"] and record["part"] == "race" and record["target"] == 10.0
    assert (record["eval_interval"], record["eval_batches"]) == (4, 2)
    assert (tmp_path / "out" / "cpu_race.json").is_file()
    nano, projects = record["nanogpt"], record["projects"]
    assert [p["recipe"] for p in projects] == recipes
    assert [c["step"] for c in nano["val_curve"]] == [0, 4, 8]  # nanoGPT also validates before its first step
    for side in (nano, *projects):
        assert side["status"] == "ok" and side["steps"] == 8 and side["tokens_per_step"] == 4 * 32
        assert 0 < side["launch_to_first_step"] < side["wall"] and 0 < side["time_to_target"] < side["wall"]
        assert side["tokens_per_sec"] == pytest.approx(side["tokens_per_step"] * 1000 / side["ms_per_step"])
        assert side["final_val"] == side["val_curve"][-1]["val_loss"]
    runs = tmp_path / "work" / "cpu_bench" / "race"
    for i, (proj, lr) in enumerate(zip(projects, (2e-3, 3e-3)), start=1):
        assert [c["step"] for c in proj["val_curve"]] == [4, 8]
        assert proj["ratios"]["wall"] == pytest.approx(proj["wall"] / nano["wall"])
        assert proj["ratios"]["tokens_per_sec"] == pytest.approx(proj["tokens_per_sec"] / nano["tokens_per_sec"])
        cfg = yaml.safe_load((runs / f"run_project_{i}" / "config.yaml").read_text())
        assert (cfg["trainer"]["val_check_interval"], cfg["trainer"]["limit_val_batches"]) == (4, 2)
        assert cfg["data"]["val_batch_size"] == 4 and cfg["callbacks"]["generation"] is None
        assert cfg["optim"]["lr"] == lr  # the recipe's own overrides reached train.py
    table = (tmp_path / "results" / "cpu_race.md").read_text()
    assert table.startswith("### race: cpu") and table.count("| metric | nanoGPT | project | project / nanoGPT |") == 2
    assert "| whole process, wall (s) |" in table and "`experiment=shakespeare_char_cpu optim.lr=3e-3`" in table
    with tarfile.open(tmp_path / "out" / "cpu_bundle.tar.gz") as tar:
        names = tar.getnames()
    assert any(n.endswith("race/nanogpt_cpu.log") for n in names) and any(n.endswith("first_step.json") for n in names)


def _env() -> dict:
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1"}
