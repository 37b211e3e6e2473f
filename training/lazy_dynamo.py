"""torch._dynamo, imported the first time something compiles instead of at the first optimizer step.

Importing torch._dynamo (sympy, torch.distributed.tensor, dynamo's trace rules) costs 0.9-1.4 s of a 2-core
start-up, about a quarter of launch to first step, and an uncompiled run imports it only for no-ops: torch's
optimizers call `torch._dynamo.graph_break()` in every step and wrap four methods in `torch._dynamo.disable`
on first use; Lightning takes `OptimizedModule` for isinstance checks and decorates two methods with
`torch.compiler.disable` as it is imported. `install()` puts a stand-in module under the name torch._dynamo
that answers those four names without the import, exactly as dynamo does while nothing is being compiled:

- `graph_break()` does nothing (dynamo's own does nothing outside a trace);
- `disable(fn)` returns a wrapper that calls `fn` straight while the real torch._dynamo is not imported (no
  compiled frame can exist then) and dynamo's `disable(fn)` from then on;
- `OptimizedModule` is a class whose isinstance/issubclass ask the real class once it exists (nothing is
  compiled before);
- `is_compiling()` is False until the real module exists, then asks it.

Any other name (torch.compile asks for `optimize`), and any import of a torch._dynamo submodule, imports the
real torch._dynamo in place of the stand-in; from then on everything is dynamo's own. A module that bound the
stand-in meanwhile keeps working: its attribute lookups are forwarded.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from pathlib import Path
from typing import Any

NAME = "torch._dynamo"


def real_imported() -> types.ModuleType | None:
    """The real torch._dynamo when it was imported, else None."""
    module = sys.modules.get(NAME)
    return None if module is None or module is STAND_IN else module


def _import_real() -> types.ModuleType:
    if sys.modules.get(NAME) is STAND_IN:
        del sys.modules[NAME]
    if _SUBMODULES in sys.meta_path:
        sys.meta_path.remove(_SUBMODULES)
    import torch

    real = importlib.import_module(NAME)
    torch._dynamo = real  # the import sets it too; also when the stand-in was bound by torch's lazy __getattr__
    return real


class _StandIn(types.ModuleType):
    def __getattr__(self, name: str) -> Any:  # only names the stand-in lacks: the real module has them
        if name.startswith("__"):  # the import system probing (__path__ is set; __file__, __spec__ ...)
            raise AttributeError(name)
        return getattr(_import_real(), name)


class _CompiledCheck(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        real = real_imported()
        return real is not None and isinstance(obj, real.OptimizedModule)

    def __subclasscheck__(cls, sub: type) -> bool:
        real = real_imported()
        return real is not None and issubclass(sub, real.OptimizedModule)


class OptimizedModule(metaclass=_CompiledCheck):
    """torch._dynamo.OptimizedModule for isinstance checks made before anything was compiled."""


def graph_break(msg: str = "") -> None:
    real = real_imported()
    if real is not None:  # called from a frame dynamo may be tracing: its own graph_break
        real.graph_break(msg)


def is_compiling() -> bool:
    real = real_imported()
    return real is not None and real.is_compiling()


def disable(fn=None, recursive: bool = True, *, reason: str | None = None, wrapping: bool = True):
    """torch._dynamo.disable(fn), made on the first call after the real torch._dynamo was imported."""
    if fn is None:
        return functools.partial(disable, recursive=recursive, reason=reason, wrapping=wrapping)
    disabled = None

    def call(*args, **kwargs):
        nonlocal disabled
        if disabled is None:
            real = real_imported()
            if real is None:
                return fn(*args, **kwargs)
            disabled = real.disable(fn, recursive, reason=reason, wrapping=False)
        return disabled(*args, **kwargs)

    return functools.wraps(fn)(call) if wrapping else call


class _Present(importlib.abc.Loader):
    """Loads a torch._dynamo submodule by importing the real torch._dynamo, then the submodule, as usual."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        _import_real()
        module = importlib.import_module(spec.name)
        self.spec = module.__spec__  # the import system sets __spec__ to ours next; exec_module puts it back
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        if module.__spec__ is not self.spec:  # a module refusing new attributes (dynamo's config) kept its own
            module.__spec__ = self.spec


class _Submodules(importlib.abc.MetaPathFinder):
    """An import of torch._dynamo.<anything> while the stand-in is in place: the real package first."""

    def find_spec(self, name, path=None, target=None):
        if not name.startswith(NAME + ".") or sys.modules.get(NAME) is not STAND_IN:
            return None
        return importlib.machinery.ModuleSpec(name, _Present())


STAND_IN = _StandIn(NAME, __doc__)
STAND_IN.OptimizedModule = OptimizedModule
STAND_IN.graph_break = graph_break
STAND_IN.is_compiling = is_compiling
STAND_IN.disable = disable
_SUBMODULES = _Submodules()


def install() -> bool:
    """Put the stand-in in place (before Lightning is imported, which takes OptimizedModule as it starts).
    False when torch._dynamo is already imported (or the stand-in already in place): nothing to defer."""
    if NAME in sys.modules:
        return False
    import torch

    STAND_IN.__path__ = [str(Path(location) / "_dynamo") for location in torch.__path__]
    sys.modules[NAME] = STAND_IN
    sys.meta_path.insert(0, _SUBMODULES)
    torch._dynamo = STAND_IN  # else every `torch._dynamo` goes through torch's lazy-module __getattr__
    return True
