"""training/startup.py: torchmetrics imported without scipy, transformers and matplotlib (which import normally
afterwards), wandb.init without W&B Launch unless launch inputs were staged, and no garbage collection walking
the start-up's objects."""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import subprocess
import sys
import types
import weakref
from pathlib import Path

import pytest
import yaml

from training import startup

ROOT = Path(__file__).resolve().parents[2]

FRESH = """
import json, sys
from training.startup import lean_torchmetrics
first = lean_torchmetrics()
import lightning, torch
from torchmetrics import MeanMetric
hidden = [name for name in ("scipy", "transformers", "matplotlib") if name in sys.modules]
m = MeanMetric()
m.update(torch.tensor([1.0, 2.0]), weight=torch.tensor([1.0, 3.0]))
from lightning_utilities.core.imports import package_available
after = {"scipy": package_available("scipy")}
try:
    import scipy.signal  # noqa: F401
    after["scipy.signal"] = True
except ImportError:
    after["scipy.signal"] = False
print(json.dumps({"first": first, "again": lean_torchmetrics(), "hidden": hidden, "mean": float(m.compute()),
                  "after": after}))
"""


@pytest.mark.slow
def test_a_fresh_process_imports_lightning_without_scipy_transformers_or_matplotlib():
    out = subprocess.run([sys.executable, "-c", FRESH], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["first"] is True and got["again"] is False  # once per process
    assert got["hidden"] == []  # none of the three was imported along with Lightning and torchmetrics
    assert got["mean"] == pytest.approx(1.75)  # the torchmetrics the project uses works: (1*1 + 2*3) / 4
    installed = importlib.util.find_spec("scipy") is not None
    assert got["after"] == {"scipy": installed, "scipy.signal": installed}  # and scipy imports as before


FAKE_TORCHVISION = """
import json, sys
from training.startup import lean_torchmetrics
lean_torchmetrics()
import lightning, torchmetrics
during = "torchvision" in sys.modules
import torchvision
print(json.dumps({"during": during, "after": torchvision.FAKE}))
"""


@pytest.mark.slow
def test_an_installed_torchvision_is_not_imported_with_torchmetrics_but_imports_afterwards(tmp_path):
    """A stand-in torchvision, installed (package and metadata) where the interpreter finds it: torchmetrics
    imports it as it starts unless it is hidden (4 s on the GPU machine, whose image has the real one)."""
    (tmp_path / "torchvision").mkdir()
    (tmp_path / "torchvision" / "__init__.py").write_text("FAKE = True\n")
    (tmp_path / "torchvision-0.99.0.dist-info").mkdir()
    (tmp_path / "torchvision-0.99.0.dist-info" / "METADATA").write_text("Name: torchvision\nVersion: 0.99.0\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", FAKE_TORCHVISION], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"during": False, "after": True}


def test_the_finder_hides_the_packages_and_their_modules_only():
    finder = startup._Hide()
    for name in ("scipy", "scipy.signal", "transformers", "matplotlib.pyplot", "torchvision.models"):
        with pytest.raises(ModuleNotFoundError):
            finder.find_spec(name)
    assert finder.find_spec("scipyx") is None and finder.find_spec("torch") is None  # others: not its business


def test_nothing_is_done_once_torchmetrics_is_imported():
    import torchmetrics  # noqa: F401

    assert startup.lean_torchmetrics() is False
    assert not any(isinstance(f, startup._Hide) for f in sys.meta_path)


def test_lean_imports_run_first_among_the_hydra_callbacks():
    callbacks = yaml.safe_load((ROOT / "conf" / "hydra" / "default.yaml").read_text())["callbacks"]
    assert list(callbacks)[0] == "lean_imports"
    assert callbacks["lean_imports"]["_target_"] == "training.startup.LeanImports"


@pytest.fixture
def run_class(monkeypatch):
    from wandb.sdk.wandb_run import Run

    monkeypatch.setattr(Run, "_detect_and_apply_job_inputs", Run._detect_and_apply_job_inputs)  # restored after
    return Run


def test_wandb_skips_launch_inputs_unless_they_were_staged(run_class, monkeypatch):
    calls = []
    monkeypatch.setattr(run_class, "_detect_and_apply_job_inputs", lambda self: calls.append(self))
    assert startup.skip_unstaged_launch_inputs() is True
    assert startup.skip_unstaged_launch_inputs() is True  # patched once, not wrapped twice
    monkeypatch.delitem(sys.modules, startup.STAGED_INPUTS, raising=False)
    run_class._detect_and_apply_job_inputs("run")
    assert calls == []  # no launch module: nothing can have been staged, nothing imported
    monkeypatch.setitem(sys.modules, startup.STAGED_INPUTS, types.ModuleType(startup.STAGED_INPUTS))
    run_class._detect_and_apply_job_inputs("run")
    assert calls == ["run"]  # inputs may have been staged: W&B applies them as before


def test_the_wandb_step_skipped_exists_in_this_wandb(run_class):
    source = importlib.util.find_spec("wandb.sdk.wandb_run").origin
    text = Path(source).read_text()
    assert "self._detect_and_apply_job_inputs()" in text and startup.STAGED_INPUTS in text


class _Node:
    """An object in a reference cycle: only the cyclic garbage collector frees it."""

    def __init__(self):
        self.me = self


def test_start_up_stays_out_of_the_training_loops_collections_and_is_collectable_afterwards():
    was_enabled = gc.isenabled()
    gc.disable()  # as train.py starts
    try:
        node = _Node()
        ref = weakref.ref(node)
        del node  # start-up's cyclic garbage
        with startup.frozen_start_up():
            assert gc.isenabled() and gc.get_freeze_count() > 1000
            gc.collect()
            assert ref() is not None  # frozen: no collection in the loop walks what start-up built
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert ref() is None  # afterwards collectable again
    finally:
        gc.unfreeze()
        (gc.enable if was_enabled else gc.disable)()


COLLECTOR = """
import contextlib, gc, json, runpy, sys
from training import startup
seen = {"collections": 0}
gc.callbacks.append(lambda phase, info: phase == "stop" and seen.__setitem__("collections", seen["collections"] + 1))
real = startup.frozen_start_up
@contextlib.contextmanager
def probed():
    seen["before"] = {"collections": seen["collections"], "enabled": gc.isenabled()}
    with real():
        seen["inside"] = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count() > 100_000}
        yield
    seen["after"] = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}
startup.frozen_start_up = probed
seen["collections"] = 0
script, *args = sys.argv[1:]
sys.argv = [script, *args]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    print(json.dumps({**seen, "at_exit": {"frozen": gc.get_freeze_count() > 100_000}}))
"""


def probe_collector(script: str, *args: str) -> dict:
    """Run `script` with `args` in a fresh process, the collector watched: the COLLECTOR probe's JSON."""
    out = subprocess.run([sys.executable, "-c", COLLECTOR, script, *args], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_train_py_runs_no_collection_before_the_training_loop_and_freezes_start_up_for_it(tmp_path):
    """Six full collections of 20-150 ms each (0.45 s) used to walk the start-up's 300,000 long-lived objects
    before the first step, and one more (0.25 s) as the process exited."""
    args = [f"hydra.run.dir={tmp_path / 'run'}", "experiment=shakespeare_char_cpu", "logger=csv",
            "trainer.max_steps=2", "trainer.limit_val_batches=1", "callbacks.generation.num_samples=0",
            "sample.num_samples=0", "model.n_layer=1", "model.n_embd=32"]  # fmt: skip
    got = probe_collector("train.py", *args)
    assert got["before"] == {"collections": 0, "enabled": False}
    assert got["inside"] == {"enabled": True, "frozen": True}
    assert got["after"] == {"enabled": True, "frozen": 0}  # collectable again for a next job
    assert got["at_exit"] == {"frozen": True}  # Python's collection at exit walks none of it either
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


FIXTURES = ROOT / "tests" / "fixtures" / "checkpoints"


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, args",
    [
        (
            "sample.py",
            [f"ckpt_path={FIXTURES / 'gpt_format1.ckpt'}", "prompt=ROMEO:", "num_samples=1", "max_new_tokens=5"],
        ),
        ("translate.py", [f"ckpt_path={FIXTURES / 'seq2seq_format1.ckpt'}", "text=Ein Mann fährt Fahrrad."]),
    ],
)
def test_sampling_and_translating_run_no_collection_before_their_work(script, args):
    """sample.py spent 0.9 s of 6 s in eight full collections of the start-up's objects."""
    got = probe_collector(script, *args)
    assert got["before"] == {"collections": 0, "enabled": False}
    assert got["inside"] == {"enabled": True, "frozen": True}
    assert got["after"] == {"enabled": True, "frozen": 0}
    assert got["at_exit"] == {"frozen": True}
