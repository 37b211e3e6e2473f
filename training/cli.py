"""What every entry point shares: bad input reported as one line, and free-text arguments.

A *user error* is an `errors.UserError` (`ConfigError`, `MissingFileError`): the project's checks raise them, and
`user_errors()` catches them by type, prints `Error: <message>` and exits with status 1. Anything else (a bug, a
library's own error) keeps its traceback. `HYDRA_FULL_ERROR=1` shows the traceback of user errors too.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from hydra.errors import InstantiationException

from errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def root_cause(exc: BaseException) -> BaseException:
    """A config class's own error rather than Hydra's instantiate wrapper around it."""
    while isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message of a user error, None for anything else (a bug: it keeps its traceback). A write that
    failed for lack of space or permission is the user's too (training/disk)."""
    exc = root_cause(exc)
    if not isinstance(exc, UserError) and isinstance(exc, (OSError, RuntimeError)):
        from training.disk import disk_error

        exc = disk_error(exc) or exc
    if isinstance(exc, UserError):
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def show_tracebacks() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def fail(message: str) -> NoReturn:
    """Print `Error: <message>` on stderr and exit with status 1 (SystemExit also passes Hydra's callbacks,
    which turn exceptions into warnings)."""
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(1)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Around an entry point's work: a user error becomes `Error: <message>` on stderr and exit status 1."""
    try:
        yield
    except Exception as exc:
        message = user_error_message(exc)
        if message is None or show_tracebacks():
            raise
        fail(message)


def quote_free_text(argv: list[str], keys: tuple[str, ...]) -> list[str]:
    """Quote the values of `keys` (key=value arguments) for Hydra's override parser, which rejects unquoted
    commas, colons, brackets and non-ASCII letters: `text=Ein Mann fährt Fahrrad.` becomes
    `text='Ein Mann fährt Fahrrad.'`. Values the user already quoted are left alone."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
        if sep and key in keys and not quoted and value != "null":
            # Hydra: backslashes escape only before a quote (and the closing quote); ${ would interpolate.
            escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
            escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped).replace("${", "\\${")
            arg = f"{key}='{escaped}'"
        out.append(arg)
    return out


def entry_point(run, config_name: str, *, free_text: tuple[str, ...] = (), argv=None) -> None:
    """What an entry point's `__main__` does: rewrite its arguments (free-text keys quoted for Hydra, or the
    entry point's own `argv(args) -> args`), compose conf/<config_name>.yaml with them and call run(cfg),
    reporting user errors in one line."""
    import hydra

    from training.hydra_errors import explain_unknown_keys

    explain_unknown_keys()  # a misspelt key: "did you mean ...", one line
    args = sys.argv[1:] if argv is None else argv(sys.argv[1:])
    sys.argv = quote_free_text(sys.argv[:1] + args, free_text)

    @hydra.main(version_base="1.3", config_path=str(ROOT / "conf"), config_name=config_name)
    def main(cfg) -> None:
        from training.safe_load import trust_checkpoints

        with user_errors():  # bad input: one line, exit 1
            trust_checkpoints(bool(cfg.get("trust_checkpoint", False)))  # checkpoints are data unless trusted
            run(cfg)

    main()
    gc.freeze()  # the process ends: Python's last collection at exit need not walk every object (training/startup.py)
