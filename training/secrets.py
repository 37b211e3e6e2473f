"""Secrets stay secret: values of keys named like secrets are `<redacted>` in everything a run writes.

The rule, by key name (the last part of a dotted key, split into words at `_`, `-` and camelCase): a secret is a
key with the word `password`, `passwd`, `passphrase`, `secret`, `token`, `apikey`, `credential(s)` or `auth`, or a
key ending in `_key` (`api_key`, `access_key`, `private_key`). Whole words only: `tokenizer`, `tiktoken_dir`,
`max_new_tokens`, `max_tokens` are settings, not secrets. Redacted: `<run>/config.yaml`, `.hydra/config.yaml`,
`.hydra/overrides.yaml`, `.hydra/hydra.yaml`, a multirun's `multirun.yaml` (`RedactSecrets`, a Hydra callback),
`status.json`, the W&B config and the command line W&B records (`redacted_argv`), and the overrides a checkpoint
keeps for resuming (where a secret is left out). A secret belongs in an environment variable (WANDB_API_KEY,
HF_TOKEN, ...), never on the command line.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

REDACTED = "<redacted>"
SECRET_WORDS = frozenset(
    {"password", "passwd", "passphrase", "secret", "token", "apikey", "credential", "credentials", "auth"}
)
_WORDS = re.compile(r"[_\-\s]+|(?<=[a-z0-9])(?=[A-Z])")
# key=value items of an override list or of Hydra's override_dirname ("a=1,+api_key=x")
_OVERRIDE = re.compile(r"(?P<key>[+~]*[\w.\-@/]+)=(?P<value>[^,\s]*)")


def is_secret_key(key: Any) -> bool:
    """Whether a config key (or dotted override key) names a secret (see the module docstring)."""
    leaf = str(key).lstrip("+~").rsplit(".", 1)[-1].split("@")[0]
    words = [w.lower() for w in _WORDS.split(leaf) if w]
    if not words:
        return False
    # a secret word names a secret, except in a rate (flops_per_token: FLOPs per token)
    named = any(w in SECRET_WORDS and (i == 0 or words[i - 1] != "per") for i, w in enumerate(words))
    return named or (len(words) > 1 and words[-1] == "key")


def redact(obj: Any) -> Any:
    """A copy of a plain container with the value of every secret key replaced by `<redacted>`."""
    if isinstance(obj, dict):
        return {k: (REDACTED if is_secret_key(k) and v is not None else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def override_key(override: str) -> str:
    """`+db.password=x` -> `db.password`; `model=gpt_nano` -> `model`; `~callbacks.x` -> `callbacks.x`."""
    return override.split("=", 1)[0].lstrip("+~")


def redact_override(override: str) -> str:
    """`+api_key=abc` -> `+api_key=<redacted>`; any other override as it is."""
    key, sep, _ = override.partition("=")
    return f"{key}={REDACTED}" if sep and is_secret_key(key) else override


def redact_text(text: str) -> str:
    """Every secret `key=value` item inside a string (Hydra's override_dirname, a command line) redacted."""
    return _OVERRIDE.sub(lambda m: f"{m['key']}={REDACTED}" if is_secret_key(m["key"]) else m[0], text)


def redact_all(obj: Any) -> Any:
    """redact() by key, and every string value's `key=value` items too (override lists, override_dirname)."""
    if isinstance(obj, dict):
        return {k: (REDACTED if is_secret_key(k) and v is not None else redact_all(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_all(v) for v in obj]
    return redact_text(obj) if isinstance(obj, str) else obj


def redact_yaml_file(path: Path) -> bool:
    """Rewrite a YAML file Hydra wrote (config, overrides, hydra, multirun) with its secrets redacted; True if
    anything changed. Interpolations stay as they are (nothing is resolved)."""
    if not path.is_file():
        return False
    loaded = OmegaConf.load(path)
    plain = OmegaConf.to_container(loaded, resolve=False)
    clean = redact_all(plain)
    if clean == plain:
        return False
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(clean)), encoding="utf-8")
    return True


class RedactSecrets(Callback):
    """Hydra callback: once Hydra has written .hydra/{config,overrides,hydra}.yaml (and multirun.yaml), rewrite
    them with secrets redacted, before the job runs."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        hydra = config.hydra
        if hydra.output_subdir is not None:
            folder = Path(hydra.runtime.output_dir) / str(hydra.output_subdir)
            for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
                redact_yaml_file(folder / name)
        if str(hydra.get("mode")).endswith("MULTIRUN"):  # RunMode.MULTIRUN
            redact_yaml_file(Path(str(hydra.sweep.dir)) / "multirun.yaml")


@contextlib.contextmanager
def redacted_argv() -> Iterator[None]:
    """sys.argv with secret overrides redacted, for libraries that record the command line (W&B's metadata)."""
    saved = sys.argv
    sys.argv = [saved[0], *(redact_override(a) for a in saved[1:])]
    try:
        yield
    finally:
        sys.argv = saved
