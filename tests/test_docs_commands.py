"""Every command the README and docs/*.md show for train.py, eval.py, estimate.py, sample.py and translate.py
composes as written (Hydra's compose API, with each entry point's own argument rewriting; nothing runs)."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from training.cli import quote_free_text

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIGS = {"train": "train", "eval": "eval", "estimate": "train", "sample": "sample", "translate": "translate"}
COMMAND = re.compile(r"(?:^|[\s`(])(?:\S*/)?python3?\s+(?:\S*/)?(train|eval|estimate|sample|translate)\.py\b([^`\n)]*)")
WHOLE_PLACEHOLDER = re.compile(r"(?<!\S)(?:[\w.+~/-]+=)?<[^<>]*>(?!\S)")  # sweeps=<name>, <any train.py overrides>


def doc_commands() -> list[tuple[str, str, str]]:
    """(file:line, script, its arguments as written) for commands in code blocks and inline code."""
    found = []
    for doc in DOCS:
        lines, fenced, joined, start = doc.read_text(encoding="utf-8").split("\n"), False, "", 0
        for number, line in enumerate(lines, 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            if fenced:
                joined, start = (joined + " " + line, start) if joined else (line, number)
                if line.rstrip().endswith("\\"):
                    joined = joined.rstrip()[:-1]
                    continue
                texts, joined = [re.sub(r"(^|\s)#.*", "", joined)], ""  # a command in a comment is prose
            else:
                texts, start = re.findall(r"`([^`]+)`", line), number
            found += [(f"{doc.name}:{start}", m.group(1), m.group(2)) for t in texts for m in COMMAND.finditer(t)]
    return found


def arguments(script: str, written: str) -> tuple[list[str], bool]:
    """The Hydra overrides a command line gives (placeholders filled, optional [brackets] taken), and -m."""
    written = re.split(r"\s(?:&&|\||;|>)\s", written)[0]
    written = WHOLE_PLACEHOLDER.sub(" ", written)
    written = re.sub(r"<[^<>\s]*>", "x", written)  # logs/train/runs/<run>/... -> a path
    args = [
        a[1:-1] if re.fullmatch(r"\[[^=\]]*\]|\[[\w.]+=[^\[\]]*\]", a) else a
        for a in shlex.split(written, comments=True)
    ]
    multirun = any(a in ("-m", "--multirun") for a in args)
    args = [a for a in args if a not in ("-m", "--multirun", "...")]  # "..." elides more of the same
    args = hydra_flags_removed(args)
    sys.path.insert(0, str(ROOT))
    entry = importlib.import_module(script)  # the entry point's own argument rewriting, as its __main__ does
    if hasattr(entry, "hydra_args"):  # estimate.py, eval.py
        args = [a for a in entry.hydra_args(args) if a not in getattr(entry, "NO_OUTPUTS", ())]
    if hasattr(entry, "FREE_TEXT_KEYS"):  # free text (text=, prompt=) quoted for Hydra's parser, as entry_point does
        args = quote_free_text(args, entry.FREE_TEXT_KEYS)
    return args, multirun


HYDRA_FLAGS = ("--help", "-h", "--hydra-help", "--resolve", "--info", "-i")  # Hydra's own, not overrides
HYDRA_FLAGS_WITH_VALUE = ("--cfg", "-c", "--package", "-p")


def hydra_flags_removed(args: list[str]) -> list[str]:
    """The overrides of a command line without Hydra's flags (`--help`, `--cfg job --resolve`, ...)."""
    kept, skip = [], False
    for a in args:
        if skip or a in HYDRA_FLAGS:
            skip = False
            continue
        skip = a in HYDRA_FLAGS_WITH_VALUE
        if not skip:
            kept.append(a)
    return kept


def sweep_expansions(args: list[str]) -> list[list[str]]:
    """One override list per value of each swept key (the other keys at their first value)."""
    parsed = OverridesParser.create().parse_overrides(args)
    choices = [list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()] for o in parsed]
    keys = [o.get_key_element() for o in parsed]
    first = [f"{k}={c[0]}" for k, c in zip(keys, choices)]
    runs = [first]
    for i, values in enumerate(choices):
        runs += [first[:i] + [f"{keys[i]}={v}"] + first[i + 1 :] for v in values[1:]]
    return runs


def sweeper_choices(config_name: str, overrides: list[str]) -> list[str]:
    """The named sweep's own swept choices (hydra.sweeper.params, e.g. experiment=a,b,c) that the command line does
    not set: a sweep over presets composes only with its presets. Other sweeps (Optuna's intervals) are left out."""
    from hydra.core.override_parser.types import ChoiceSweep

    cfg = compose(config_name=config_name, overrides=sweep_expansions(overrides)[0], return_hydra_config=True)
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    swept = [f"{key}={value}" for key, value in params.items() if key not in given]
    return [o for o in swept if isinstance(OverridesParser.create().parse_overrides([o])[0].value(), ChoiceSweep)]


COMMANDS = doc_commands()


def test_the_docs_show_commands_of_every_entry_point():
    scripts = {script for _, script, _ in COMMANDS}
    assert {"train", "eval", "estimate", "sample", "translate"} <= scripts, scripts
    assert len(COMMANDS) > 40


@pytest.mark.parametrize("where, script, written", COMMANDS, ids=[f"{w}:{s}" for w, s, _ in COMMANDS])
def test_a_documented_command_composes(where, script, written):
    import training.config  # noqa: F401  (the resolvers the configs use)

    os.environ.setdefault("TFORMER_ROOT", str(ROOT))
    args, multirun = arguments(script, written)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        if multirun:
            args += sweeper_choices(CONFIGS[script], args)
        runs = sweep_expansions(args) if multirun else [args]
        for overrides in runs:
            try:
                cfg = compose(config_name=CONFIGS[script], overrides=overrides)
                for section in ("data", "model", "module"):
                    if cfg.get(section) is not None:
                        OmegaConf.to_container(cfg[section], resolve=True)
            except Exception as err:
                pytest.fail(f"{where}: `python {script}.py{written}` does not compose ({type(err).__name__}: {err})")
