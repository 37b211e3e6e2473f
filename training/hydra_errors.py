"""A misspelt key is a one-line answer with the key meant: `model.n_embdd=64` fails with
`Error: model.n_embdd is not a setting (did you mean model.n_embd?) ...`, not Hydra's "use +model.n_embdd".

Hydra reports composition errors itself, before any entry point code runs, through its private
`hydra._internal.utils.run_and_report`; `explain_unknown_keys()` wraps that function (the one private Hydra name
here, checked by tests/training/test_hydra_errors.py) so that an unknown key is explained and every other error
keeps Hydra's own report.
"""

from __future__ import annotations

import difflib
from typing import Any

from training.cli import fail, show_tracebacks


def unknown_key_message(exc: BaseException) -> str | None:
    """The one-line message for Hydra's "Could not override 'a.b'" of a key the config does not have, else None."""
    cause = exc.__cause__
    full_key, key, parent = (getattr(cause, name, None) for name in ("full_key", "key", "parent_node"))
    if not full_key or not key or parent is None or "Could not override" not in str(exc):
        return None
    try:
        known = [str(k) for k in parent.keys()]
    except Exception:
        return None
    prefix = str(full_key)[: -len(str(key))]  # "model." for model.n_embdd
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    value = str(exc).split(f"+{full_key}=", 1)[-1].splitlines()[0] if f"+{full_key}=" in str(exc) else "..."
    where = prefix.rstrip(".") or "the config"
    guess = f"did you mean {prefix}{close[0]}?" if close else f"{where} has {', '.join(known[:12])}"
    return f"{full_key} is not a setting ({guess}); to add a new key, write +{full_key}={value}"


def explain_unknown_keys() -> None:
    """Install the explanation (idempotent); HYDRA_FULL_ERROR=1 keeps Hydra's full report."""
    import hydra._internal.utils as hydra_utils
    from hydra.errors import ConfigCompositionException

    original = hydra_utils.run_and_report
    if getattr(original, "explains_unknown_keys", False):
        return

    def run_and_report(func: Any) -> Any:
        def explained() -> Any:
            try:
                return func()
            except ConfigCompositionException as exc:
                message = unknown_key_message(exc)
                if message is None or show_tracebacks():
                    raise
                fail(message)

        return original(explained)

    run_and_report.explains_unknown_keys = True
    hydra_utils.run_and_report = run_and_report
