"""A faster start: imports a training run never uses are left out, W&B skips work no run here needs, and the
garbage collector leaves the start-up's objects alone (frozen_start_up).

Lightning imports torchmetrics as it starts (to read its version), and torchmetrics, as it starts, imports
scipy.signal (its audio metrics), Hugging Face transformers (BERTScore) and torchvision (its image metrics)
whenever they are installed (transformers comes with the `pretrained` extra, torchvision with most CUDA
images): about 2 s of a 2-core start-up, and 4.0 s of 8.4 s of imports on the H200 machine of the GPU benchmark
(torchvision), for metrics this project never computes (it uses MeanMetric). `lean_torchmetrics()` imports
torchmetrics with those packages hidden, so torchmetrics records them as absent; afterwards they import
normally (models/pretrained.py's transformers, anything else's scipy or torchvision). Only torchmetrics'
BERTScore, InfoLM, image and scipy-backed audio metrics would then say their package is missing, in this
process.
"""

from __future__ import annotations

import gc
import importlib.abc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from training import lazy_dynamo

HIDDEN = ("scipy", "transformers", "matplotlib", "torchvision")  # imported by torchmetrics as it starts; unused


class _Hide(importlib.abc.MetaPathFinder):
    """An import finder under which the HIDDEN packages are not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden while torchmetrics starts)", name=name)
        return None


def lean_torchmetrics() -> bool:
    """Import torchmetrics without scipy and transformers (before Lightning does it with them); False when
    torchmetrics was already imported, or when either package already was (then there is nothing to save)."""
    if "torchmetrics" in sys.modules or any(name in sys.modules for name in HIDDEN):
        return False
    import lightning_utilities.core.imports as availability  # how torchmetrics checks packages and versions

    real_version = availability._version

    def version(distribution: str) -> str:  # RequirementCache("transformers>=4.4") reads the installed version
        if distribution.lower().replace("-", "_") in HIDDEN:
            raise availability.PackageNotFoundError(distribution)
        return real_version(distribution)

    finder = _Hide()
    sys.meta_path.insert(0, finder)
    availability._version = version
    try:
        import torchmetrics  # noqa: F401
    finally:
        sys.meta_path.remove(finder)
        availability._version = real_version
        availability.package_available.cache_clear()  # later questions get the true answer
        availability.module_available.cache_clear()
    return True


def lean_start() -> None:
    """What a process does before anything imports Lightning: torch._dynamo deferred (training/lazy_dynamo.py),
    then torchmetrics imported without the packages a run never uses."""
    lazy_dynamo.install()
    lean_torchmetrics()


@contextmanager
def frozen_start_up() -> Iterator[None]:
    """Around the training loop and what follows it (sample.py: the sampling; translate.py: the decoding;
    eval.py: the scoring): the cyclic garbage collector back on, never again walking what start-up built.

    Those four scripts turn the collector off as they start. Start-up builds some 300,000 objects that live as
    long as the run (modules, classes, W&B's pydantic settings, the config, the model) and little cyclic garbage,
    yet the collector walks all of them each time its counters fill: six full passes of 20-150 ms before the
    first step of the CPU recipe, about 0.45 s of a 3 s start on 2 cores (bench/startup.py); eight passes, 0.9 s,
    before sample.py sampled (1.6 s of its 6 s with those during sampling and at exit). Here they are frozen
    (gc.freeze, CPython's means for long-lived objects) and the collector is on again, so that its collections
    walk only what the work allocates; afterwards they are collectable again (the next job of a multirun, a test
    calling train() in-process). The start-up's cyclic garbage (about 45,000 objects, 7 MB more peak memory on
    the CPU recipe) is kept until then."""
    gc.freeze()
    gc.enable()
    try:
        yield
    finally:
        gc.unfreeze()


class LeanImports(Callback):
    """Hydra callback (conf/hydra/default.yaml, before anything imports Lightning): lean_start() once the config
    is composed, so that a config Hydra refuses still fails before torch is even imported."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        lean_start()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        lean_start()


def skip_unstaged_launch_inputs() -> bool:
    """wandb.init imports all of W&B Launch (its agent, the public API, artifacts: about 2 s on 2 cores) only to
    apply the launch inputs staged in this process. Inputs are staged through wandb.sdk.launch.inputs.internal
    (launch.manage_wandb_config, manage_config_file), so while that module was never imported there are none:
    then the import is skipped. False where this wandb has no such step (nothing to skip)."""
    from wandb.sdk.wandb_run import Run

    apply = getattr(Run, "_detect_and_apply_job_inputs", None)
    if apply is None or getattr(apply, "skips_unstaged", False):
        return apply is not None

    def detect_and_apply_job_inputs(self) -> None:
        if STAGED_INPUTS in sys.modules:
            apply(self)

    detect_and_apply_job_inputs.skips_unstaged = True
    Run._detect_and_apply_job_inputs = detect_and_apply_job_inputs
    return True


STAGED_INPUTS = "wandb.sdk.launch.inputs.internal"
