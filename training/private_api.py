"""Every private Lightning and Hydra name tformer-lab relies on, in one place, each with a test (one exception:
training/hydra_errors.py wraps Hydra's private `run_and_report` before Hydra parses the command line, where
importing this module, and so Lightning, would slow every start; tests/training/test_hydra_errors.py checks it).

DDP inside a Hydra multirun is a real gap in both libraries: Lightning's `ddp` starts its extra ranks by
re-running `sys.argv`, which under `python train.py -m ...` would re-run the whole sweep in every extra
rank. `training/distributed.py` closes the gap with a launcher of its own, built on the names below.
tests/training/test_private_api.py checks each assumption against the installed versions, and the
run fails loudly (see `unknown_launcher_error`) when Lightning starts ranks in a way this file does not
know, instead of silently re-running the sweep. pyproject.toml pins lightning to the tested minor version.
(training/startup.py's start-up shortcuts lean on two more private names, lightning_utilities' `_version` and
wandb's `Run._detect_and_apply_job_inputs`, tested in tests/training/test_startup.py; and
lightning_modules/base.logs_this_step reads the trainer's `_logger_connector.should_update_logs`, kept there so
the LightningModules do not import Hydra through this file; tested in tests/lightning_modules/test_step_logging.py.
training/lazy_dynamo.py stands in for torch's private `torch._dynamo` until something compiles, answering the
four names torch's optimizers and Lightning's import ask of it; tests/training/test_lazy_dynamo.py runs a CPU
training run without importing it and a compile after. training/loggers.start_wandb_service starts W&B's service
through `wandb.sdk.wandb_setup.singleton().ensure_service()`, as wandb.init does; tests/training/test_loggers.py
and the W&B e2e run check it.)
"""

from __future__ import annotations

import lightning

TESTED_LIGHTNING = "2.6"

try:
    from hydra._internal.utils import get_args_parser
    from lightning.fabric.utilities.distributed import _set_num_threads_if_needed as set_num_threads_if_needed
    from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher as MultiProcessingLauncher
    from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher as SubprocessScriptLauncher
    from lightning.pytorch.strategies.launchers import _XLALauncher as XLALauncher
except ImportError as err:  # pragma: no cover - only with an untested Lightning or Hydra
    raise ImportError(
        f"tformer-lab's DDP launcher needs private names that lightning {lightning.__version__} or this Hydra "
        f"no longer has ({err}); it is tested with lightning {TESTED_LIGHTNING}.*: "
        f"pip install 'lightning=={TESTED_LIGHTNING}.*'"
    ) from err

# Launchers that start ranks without re-running the script: safe under a Hydra multirun as they are.
SAFE_LAUNCHERS = (MultiProcessingLauncher, XLALauncher)

__all__ = [
    "SAFE_LAUNCHERS",
    "SubprocessScriptLauncher",
    "drop_wandb_anonymous",
    "get_args_parser",
    "replace_launcher",
    "set_num_threads_if_needed",
    "unknown_launcher_error",
]


def replace_launcher(strategy, launcher) -> None:
    """Make `strategy` start its processes with `launcher` (Lightning reads `strategy._launcher` in fit)."""
    strategy._launcher = launcher


def drop_wandb_anonymous(logger) -> None:
    """Lightning's WandbLogger always passes `anonymous` to wandb.init, which wandb 0.19+ warns about on every
    run ("The anonymous setting has no effect"): leave it out when it is unset."""
    init = logger._wandb_init
    if init.get("anonymous") is None:
        init.pop("anonymous", None)


def unknown_launcher_error(launcher) -> RuntimeError:
    return RuntimeError(
        f"lightning {lightning.__version__} starts distributed ranks with {type(launcher).__qualname__}, which "
        f"tformer-lab does not know: under Hydra it could make every extra rank re-run the whole sweep. "
        f"tformer-lab is tested with lightning {TESTED_LIGHTNING}.*: pip install 'lightning=={TESTED_LIGHTNING}.*'"
    )
