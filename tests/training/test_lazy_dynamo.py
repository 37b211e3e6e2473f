"""training/lazy_dynamo.py: torch._dynamo imported the first time something compiles, not at the first optimizer
step; until then its stand-in answers exactly as dynamo does outside a trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training import lazy_dynamo

ROOT = Path(__file__).resolve().parents[2]


def fresh(code: str, *args: str) -> dict:
    """Run `code` in a fresh interpreter (the stand-in is per process); its last stdout line is JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


TRAIN_THEN_COMPILE = """
import json, sys
from training import lazy_dynamo
installed = lazy_dynamo.install()
import lightning, torch
from lightning.fabric.wrappers import _unwrap_compiled
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 1))
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
x, y = torch.randn(32, 8), torch.randn(32, 1)
losses = []
for _ in range(20):
    loss = torch.nn.functional.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    losses.append(loss.item())
steps = int(opt.state_dict()["state"][0]["step"])
before = {"real": lazy_dynamo.real_imported() is not None, "sympy": "sympy" in sys.modules,
          "plain_is_compiled": isinstance(model, lightning.fabric.wrappers.OptimizedModule)}
compiled = torch.compile(model, backend="eager")
loss = torch.nn.functional.mse_loss(compiled(x), y)
opt.zero_grad()
loss.backward()
opt.step()
import torch._dynamo as dynamo
print(json.dumps({"installed": installed, "again": lazy_dynamo.install(), "before": before,
                  "first": losses[0], "last": losses[-1], "steps": steps,
                  "real_after": lazy_dynamo.real_imported() is dynamo and sys.modules["torch._dynamo"] is dynamo
                                and torch._dynamo is dynamo and dynamo is not lazy_dynamo.STAND_IN,
                  "unwrapped": _unwrap_compiled(compiled)[0] is model,
                  "kwargs": _unwrap_compiled(compiled)[1]}))
"""


@pytest.mark.slow
def test_training_steps_run_without_dynamo_and_compiling_imports_it():
    got = fresh(TRAIN_THEN_COMPILE)
    assert got["installed"] is True and got["again"] is False
    # 20 AdamW steps with clipping (zero_grad, add_param_group, step, state_dict all go through torch's
    # dynamo-disable wrappers and graph_break) imported neither torch._dynamo nor sympy, and trained
    assert got["before"] == {"real": False, "sympy": False, "plain_is_compiled": False}
    assert got["steps"] == 20 and got["last"] < 0.8 * got["first"]
    # torch.compile imported the real module in the stand-in's place; Lightning recognises the compiled module
    assert got["real_after"] is True
    assert got["unwrapped"] is True and got["kwargs"] == {"backend": "eager"}


SUBMODULE_FIRST = """
import json, sys, importlib
from training import lazy_dynamo
lazy_dynamo.install()
name = sys.argv[1]
module = importlib.import_module(name)
import torch
real = sys.modules["torch._dynamo"]
print(json.dumps({"real": real is not lazy_dynamo.STAND_IN and torch._dynamo is real,
                  "one_copy": module is importlib.import_module(name) is getattr(real, name.rpartition(".")[2]),
                  "spec_restored": type(module.__spec__.loader).__name__ != "_Present",
                  "finder_gone": lazy_dynamo._SUBMODULES not in sys.meta_path}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["torch._dynamo.eval_frame", "torch._dynamo.config"])  # config refuses new attributes
def test_importing_a_submodule_first_imports_the_real_package_once(name):
    assert fresh(SUBMODULE_FIRST, name) == {"real": True, "one_copy": True, "spec_restored": True, "finder_gone": True}


RUN = """
import atexit, json, runpy, sys
def report():
    from training import lazy_dynamo
    print(json.dumps({"real": lazy_dynamo.real_imported() is not None, "sympy": "sympy" in sys.modules}))
atexit.register(report)
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
"""


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["shakespeare_char_cpu", "shakespeare_char_modern"])  # AdamW; Muon and RoPE
def test_a_cpu_training_run_never_imports_dynamo(tmp_path, recipe):
    """The whole train.py path: Lightning, the model's meta-device sizing, gradient clipping, validation, the
    checkpoints, sampling. An import of torch._dynamo (or sympy) anywhere in it costs 0.5-1.4 s of start-up."""
    overrides = [f"experiment={recipe}", "logger=csv", "trainer.max_steps=3", "trainer.limit_val_batches=1",
                 "trainer.val_check_interval=2", "callbacks.generation.num_samples=0", "sample.num_samples=1",
                 "sample.max_new_tokens=4", "model.n_layer=1", "model.n_embd=32"]  # fmt: skip
    got = fresh(RUN, f"hydra.run.dir={tmp_path / 'run'}", *overrides)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file() and (tmp_path / "run" / "samples.txt").is_file()
    assert got == {"real": False, "sympy": False}


def test_graph_break_disable_and_is_compiling_are_no_ops_without_dynamo(monkeypatch):
    monkeypatch.setattr(lazy_dynamo, "real_imported", lambda: None)
    calls = []

    def fn(a, b=0):
        """doc"""
        calls.append((a, b))
        return a + b

    wrapped = lazy_dynamo.disable(fn)
    assert wrapped(1, b=2) == 3 and calls == [(1, 2)]  # called straight
    assert wrapped.__doc__ == "doc" and wrapped.__wrapped__ is fn  # functools.wraps, as dynamo's disable
    assert lazy_dynamo.disable(recursive=False)(fn)(4) == 4  # the decorator-factory form
    assert lazy_dynamo.graph_break() is None and lazy_dynamo.is_compiling() is False
    assert not isinstance(object(), lazy_dynamo.OptimizedModule)


def test_once_dynamo_is_imported_the_stand_ins_hand_over_to_it(monkeypatch):
    import torch._dynamo

    monkeypatch.setattr(lazy_dynamo, "real_imported", lambda: torch._dynamo)
    seen = []
    monkeypatch.setattr(torch._dynamo, "disable", lambda fn, recursive, **kw: seen.append(kw) or (lambda *a: "real"))
    wrapped = lazy_dynamo.disable(lambda x: "plain", reason="why")
    assert wrapped(1) == "real" and wrapped(2) == "real"
    assert seen == [{"reason": "why", "wrapping": False}]  # made once, on the first call
    compiled = torch.compile(torch.nn.Linear(2, 2), backend="eager")
    assert isinstance(compiled, lazy_dynamo.OptimizedModule) and issubclass(type(compiled), lazy_dynamo.OptimizedModule)
    assert not isinstance(torch.nn.Linear(2, 2), lazy_dynamo.OptimizedModule)


def test_any_other_name_imports_the_real_module(monkeypatch):
    import torch._dynamo

    monkeypatch.setattr(lazy_dynamo, "_import_real", lambda: torch._dynamo)
    assert lazy_dynamo.STAND_IN.reset is torch._dynamo.reset
    with pytest.raises(AttributeError):
        _ = lazy_dynamo.STAND_IN.__wrapped__  # the import system's probes are not forwarded


def test_sampling_asks_for_eager_mode_only_once_something_could_be_compiled(monkeypatch):
    import contextlib

    import torch._dynamo.eval_frame  # noqa: F401

    from lightning_modules.compiling import eager

    assert not isinstance(eager(), contextlib.nullcontext)  # dynamo imported: compiled blocks run eagerly
    monkeypatch.delitem(sys.modules, "torch._dynamo.eval_frame")
    assert isinstance(eager(), contextlib.nullcontext)  # never imported: nothing to switch, nothing imported


def test_rotary_tables_follow_the_default_device_without_reference_kernels():
    """On the meta device (the sizing's module) arange is a Python reference kernel whose checks import sympy."""
    import torch

    from models.attention import rotary_tables

    cos, sin = rotary_tables(16, 8)
    with torch.device("meta"):
        meta_cos, meta_sin = rotary_tables(16, 8)
    assert meta_cos.is_meta and meta_sin.is_meta and meta_cos.shape == cos.shape == (16, 4)
    assert cos.device.type == "cpu" and cos[3, 0] == torch.cos(torch.tensor(3.0))  # angle 3 * base^0
