"""`hydra/sweeper=tformer_optuna` (conf/hydra/sweeper/tformer_optuna.yaml): Optuna's ask-and-tell loop for Hydra.

Hydra imports this module on every start (plugin discovery), so Optuna is imported only when a sweep runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from errors import ConfigError, UserError

log = logging.getLogger(__name__)


class OptunaSweeper(Sweeper):
    """Runs `n_trials` trials of an Optuna study, `n_jobs` at a time, as jobs of Hydra's launcher. A study that
    `storage` holds under `study_name` is resumed (docs/sweeps.md: the settings and Hydra's sweep syntax)."""

    def __init__(
        self,
        sampler: DictConfig | None,
        direction: str | ListConfig,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        params: DictConfig | None,
    ) -> None:
        self.sampler_config, self.direction, self.storage, self.study_name = sampler, direction, storage, study_name
        self.n_trials, self.n_jobs, self.params = n_trials, n_jobs, params
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def launch(self, batch: list[list[str]]) -> list[JobReturn]:
        returns = list(self.launcher.launch(batch, initial_job_idx=self.job_idx))
        self.job_idx += len(returns)
        return returns

    def sweep(self, arguments: list[str]) -> None:
        from training.cli import user_errors

        with user_errors():  # bad settings: `Error: <one line>`, exit status 1
            self._sweep(arguments)

    def _directions(self) -> list[str]:
        for key in ("n_trials", "n_jobs"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"hydra.sweeper.{key}={value!r} must be a whole number >= 1")
        directions = [self.direction] if isinstance(self.direction, str) else list(self.direction)
        if not directions or any(d not in ("minimize", "maximize") for d in directions):
            raise ConfigError(
                f"hydra.sweeper.direction={self.direction!r} must be minimize, maximize or a list of them (one per "
                "value the task returns)"
            )
        return directions

    def _sweep(self, arguments: list[str]) -> None:
        directions = self._directions()
        try:
            from ._study import SearchSpace, open_study, results, run_trials
        except ModuleNotFoundError as err:
            if err.name != "optuna":
                raise
            raise UserError('the Optuna sweeper needs optuna (the sweeps extra): pip install -e ".[sweeps]"') from err
        self.sampler = None if self.sampler_config is None else instantiate(self.sampler_config)
        params = [f"{key}={value}" for key, value in (self.params or {}).items()]
        space = SearchSpace([*params, *arguments])  # the command line's overrides win
        study = open_study(self.study_name, self.storage, self.sampler, directions)
        log.info(
            "Optuna study %r (%s, %s): %d earlier trial(s); %d trial(s) to run over %s",
            study.study_name, self.storage or "in memory", type(study.sampler).__name__, len(study.trials),
            self.n_trials, ", ".join(space.distributions) or "nothing",
        )  # fmt: skip
        run_trials(study, space, n_trials=self.n_trials, n_jobs=self.n_jobs, launch=self.launch)
        best = results(study)
        if best is not None:
            path = Path(self.config.hydra.sweep.dir) / "optimization_results.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(OmegaConf.create(best), path)
            log.info("Optuna: best of the study's %d trial(s) (%s): %s", len(study.trials), path, best)
