"""Optuna's side of the sweeper: Hydra's sweep syntax as Optuna distributions, and the ask-launch-tell loop."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer, ValueType
from hydra.core.utils import JobReturn, JobStatus
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from errors import ConfigError

log = logging.getLogger(__name__)


class SearchSpace:
    """What the trials vary (an Optuna distribution per override key) and the overrides every trial gets as they
    are. A key given twice keeps its last value, so the command line beats hydra.sweeper.params."""

    def __init__(self, overrides: list[str]) -> None:
        self.distributions: dict[str, BaseDistribution] = {}
        self.texts: dict[str, list[str]] = {}  # a categorical key's choices, written as Hydra overrides
        self.fixed: dict[str, str] = {}
        for override in OverridesParser.create().parse_overrides(overrides):
            key = override.get_key_element()
            for table in (self.distributions, self.texts, self.fixed):
                table.pop(key, None)
            if not override.is_sweep_override():
                self.fixed[key] = override.input_line
                continue
            try:
                self.distributions[key] = self._distribution(key, override)
            except ConfigError:
                raise
            except ValueError as err:  # Optuna's own checks: an interval's low above its high, log scale from 0
                raise ConfigError(f"{override.input_line}: {err}") from err

    def _distribution(self, key: str, override: Override) -> BaseDistribution:
        if override.is_interval_sweep():
            sweep = override.value()
            log_scale = "log" in sweep.tags
            if isinstance(sweep.start, int) and isinstance(sweep.end, int):  # int(interval(...))
                return IntDistribution(sweep.start, sweep.end, log=log_scale)
            return FloatDistribution(sweep.start, sweep.end, log=log_scale)
        glob = override.value_type == ValueType.GLOB_CHOICE_SWEEP  # glob(...) chooses among config group options
        if glob or not (override.is_choice_sweep() or override.is_range_sweep()):
            raise ConfigError(
                f"{override.input_line}: the Optuna sweeper takes choice(...) or a,b,c, range(...) and interval(...)"
            )
        values = list(override.sweep_iterator())
        if not values:
            raise ConfigError(f"{override.input_line}: the sweep has no values")
        if override.is_range_sweep() and all(type(v) is int for v in values):  # an arithmetic progression of ints
            ordered = sorted(values)
            step = ordered[1] - ordered[0] if len(ordered) > 1 else 1
            return IntDistribution(ordered[0], ordered[-1], step=step)
        self.texts[key] = [Transformer.str(v) for v in values]
        return CategoricalDistribution([Transformer.encode(v) for v in values])

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """One trial's overrides: its sampled values, then the fixed ones."""
        sampled = []
        for key, value in params.items():
            distribution = self.distributions[key]
            if key in self.texts:
                text = self.texts[key][distribution.to_internal_repr(value)]  # the index of the choice
            else:
                text = Transformer.str(value)
            sampled.append(f"{key}={text}")
        return [*sampled, *self.fixed.values()]


def open_study(name: str | None, storage: str | None, sampler: Any, directions: list[str]) -> optuna.Study:
    """Create the study, or load it from `storage` when a study of that name is there already."""
    if storage and storage.startswith("sqlite:///"):
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        study = optuna.create_study(
            study_name=name, storage=storage, sampler=sampler, directions=directions, load_if_exists=True
        )
    except Exception as err:  # not a database URL, its driver not installed, its server down
        raise ConfigError(f"hydra.sweeper.storage={storage!r} cannot be opened: {type(err).__name__}: {err}") from err
    if [d.name.lower() for d in study.directions] != directions:
        raise ConfigError(
            f"hydra.sweeper.direction={directions} but study {study.study_name!r} in {storage} was created with "
            f"{[d.name.lower() for d in study.directions]}: keep its direction or set hydra.sweeper.study_name"
        )
    return study


def check_fits(study: optuna.Study, space: SearchSpace) -> None:
    """A resumed study's parameters keep their kind, log scale and choices (Optuna refuses others mid-trial)."""
    known: dict[str, BaseDistribution] = {}
    for trial in study.get_trials(deepcopy=False):
        known |= trial.distributions
    for key, new in space.distributions.items():
        old = known.get(key, new)
        if (
            type(old) is not type(new)
            or getattr(old, "log", None) != getattr(new, "log", None)
            or (isinstance(old, CategoricalDistribution) and old.choices != new.choices)
        ):
            raise ConfigError(
                f"hydra.sweeper.params do not fit study {study.study_name!r}: {key} was {old}, now {new}; keep its "
                "search space or set hydra.sweeper.study_name to start a new study"
            )


def objective_values(value: Any, n_objectives: int) -> list[float] | None:
    """What a job returned as the study's objective values, or None when it is not that many numbers."""
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return values if len(values) == n_objectives else None


def run_trials(
    study: optuna.Study,
    space: SearchSpace,
    *,
    n_trials: int,
    n_jobs: int,
    launch: Callable[[list[list[str]]], Sequence[JobReturn]],
) -> None:
    """Ask `n_jobs` trials at a time, launch them as one batch of jobs, tell Optuna what each job returned.

    A job that returns no number (multirun.failed_value=null) is a failed trial and the sweep goes on; a job
    that raised (multirun.continue_on_failure=false) is recorded as failed, then its error ends the sweep.
    """
    check_fits(study, space)
    done = 0
    while done < n_trials:
        trials = [study.ask(space.distributions) for _ in range(min(n_jobs, n_trials - done))]
        try:
            returns = launch([space.overrides(trial.params) for trial in trials])
        except BaseException:  # Ctrl-C, a job's SystemExit: no trial of a resumable study is left running
            for trial in trials:
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        raised = []
        for trial, ret in zip(trials, returns):
            if ret.status == JobStatus.FAILED:
                raised.append(ret)
                study.tell(trial, state=TrialState.FAIL)
                continue
            values = objective_values(ret.return_value, len(study.directions))
            if values is None:
                log.warning("Trial %d returned %r, not a number per objective: failed", trial.number, ret.return_value)
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, values)
        done += len(trials)
        if raised:
            _ = raised[0].return_value  # raises the job's own error


def results(study: optuna.Study) -> dict | None:
    """The study's best trial (best trials, for several objectives) over all its runs; None before any finished."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        log.warning("Optuna study %r has no finished trial", study.study_name)
        return None
    if len(study.directions) == 1:
        best = study.best_trial
        return {"name": "optuna", "study_name": study.study_name, "best_params": best.params, "best_value": best.value}
    solutions = [{"params": t.params, "values": t.values} for t in study.best_trials]
    return {"name": "optuna", "study_name": study.study_name, "solutions": solutions}
