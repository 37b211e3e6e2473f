"""The project's Optuna sweeper (hydra_plugins/tformer_optuna_sweeper) in-process, with a launcher that scores the
trials' overrides instead of training: search space, ask-launch-tell, failures, results and a study resumed
from its sqlite file. tests/e2e/test_sweeps.py runs it under train.py."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")

from hydra.core.override_parser.overrides_parser import OverridesParser  # noqa: E402
from hydra.core.plugins import Plugins  # noqa: E402
from hydra.core.utils import JobReturn, JobStatus  # noqa: E402
from hydra.plugins.sweeper import Sweeper  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from errors import ConfigError  # noqa: E402
from hydra_plugins.tformer_optuna_sweeper._study import SearchSpace, check_fits, objective_values  # noqa: E402
from hydra_plugins.tformer_optuna_sweeper.optuna_sweeper import OptunaSweeper  # noqa: E402

PARAMS = {"x": "interval(-1.0, 1.0)", "n": "choice(1, 2, 3)", "lr": "tag(log, interval(1e-4, 1e-2))"}
RANDOM = {"_target_": "optuna.samplers.RandomSampler", "seed": 0}


def test_hydra_discovers_the_sweeper():
    found = {f"{c.__module__}.{c.__qualname__}" for c in Plugins.instance().discover(Sweeper)}  # (re-imported)
    assert "hydra_plugins.tformer_optuna_sweeper.optuna_sweeper.OptunaSweeper" in found


def test_sweep_syntax_becomes_optuna_distributions():
    space = SearchSpace(
        ["a=interval(0, 0.3)", "b=tag(log, interval(1e-4, 3e-3))", "c=int(interval(1, 10))", "d=choice(4, 6, 8)",
         "e=range(2, 9, 2)", "f=range(0, 1, 0.25)", "g=x,y", "h=shuffle(range(5, 1, -2))", "sweeps=optuna_smoke"]
    )  # fmt: skip
    assert space.distributions == {
        "a": FloatDistribution(0.0, 0.3),
        "b": FloatDistribution(1e-4, 3e-3, log=True),
        "c": IntDistribution(1, 10),
        "d": CategoricalDistribution([4, 6, 8]),
        "e": IntDistribution(2, 8, step=2),  # Hydra's stop is exclusive, Optuna's high inclusive
        "f": CategoricalDistribution([0.0, 0.25, 0.5, 0.75]),
        "g": CategoricalDistribution(["x", "y"]),
        "h": IntDistribution(3, 5, step=2),
    }
    assert space.fixed == {"sweeps": "sweeps=optuna_smoke"}


def test_the_command_line_beats_the_configured_params():
    space = SearchSpace(["model.n_layer=choice(1, 2)", "optim.lr=0.1", "model.n_layer=4", "optim.lr=0.1,0.2"])
    assert space.fixed == {"model.n_layer": "model.n_layer=4"}
    assert space.distributions == {"optim.lr": CategoricalDistribution([0.1, 0.2])}


def test_trial_overrides_parse_back_to_the_sampled_values():
    space = SearchSpace(["s='a b',c", "t=true,1.5,null", "u=interval(0, 1)", "+v=range(3)", "model=gpt_nano"])
    parse = OverridesParser.create().parse_overrides
    for i in range(2):
        params = {"s": space.distributions["s"].choices[i], "t": space.distributions["t"].choices[i], "u": 0.125,
                  "+v": i}  # fmt: skip
        overrides = space.overrides(params)
        assert overrides[-1] == "model=gpt_nano"
        parsed = {o.get_key_element(): o.value() for o in parse(overrides[:-1])}
        assert parsed == {"s": ["a b", "c"][i], "t": [True, 1.5][i], "u": 0.125, "+v": i}
    null = space.distributions["t"].choices[2]
    assert parse(space.overrides({"s": "c", "t": null, "u": 0, "+v": 0}))[1].value() is None


@pytest.mark.parametrize("override", ["a=range(0, 0)", "a=glob(*)", "a=interval(1, 0)", "a=tag(log, interval(0, 1))"])
def test_a_sweep_optuna_cannot_sample_is_a_config_error(override):
    with pytest.raises(ConfigError, match=r"^a=(range|glob|interval|tag)"):
        SearchSpace([override])


@pytest.mark.parametrize(
    "kwargs, message",
    [({"n_trials": 0}, "hydra.sweeper.n_trials=0 must be"), ({"n_jobs": 1.5}, "hydra.sweeper.n_jobs=1.5 must be"),
     ({"direction": "min"}, "hydra.sweeper.direction='min' must be"),
     ({"storage": "optuna.db"}, "hydra.sweeper.storage='optuna.db' cannot be opened: ArgumentError")],
)  # fmt: skip
def test_bad_settings_are_one_line_errors(kwargs, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        make_sweeper(None, tmp_path, **kwargs).sweep([])
    assert exit_.value.code == 1 and capsys.readouterr().err.startswith(f"Error: {message}")


def test_objective_values():
    assert objective_values(2, 1) == [2.0] and objective_values(float("inf"), 1) == [float("inf")]
    assert objective_values((1, 2), 2) == [1.0, 2.0]
    assert objective_values(None, 1) is None and objective_values("x", 1) is None and objective_values(1, 2) is None


class Scorer:
    """A launcher that scores each trial's overrides (x near 0.3 and n=2 is best) instead of running jobs."""

    def __init__(self, fail: dict[int, object] | None = None, interrupt: int | None = None):
        self.batches: list[list[list[str]]] = []
        self.fail = fail or {}  # job index -> what the job returns instead (None) or raises (an exception)
        self.interrupt = interrupt  # the batch that Ctrl-C stops

    def launch(self, batch, initial_job_idx):
        self.batches.append([list(b) for b in batch])
        if len(self.batches) - 1 == self.interrupt:
            raise KeyboardInterrupt
        returns = []
        for i, overrides in enumerate(batch, initial_job_idx):
            values = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(overrides)}
            ret = JobReturn(overrides=overrides, status=JobStatus.COMPLETED)
            ret.return_value = (values["x"] - 0.3) ** 2 + abs(values["n"] - 2)
            if i in self.fail:
                failure = self.fail[i]
                ret.status = JobStatus.FAILED if isinstance(failure, Exception) else JobStatus.COMPLETED
                ret.return_value = failure
            returns.append(ret)
        return returns


def make_sweeper(sampler: dict | None, sweep_dir, launcher=None, **kwargs):
    """The sweeper as Hydra builds it from conf/hydra/sweeper/tformer_optuna.yaml, with a Scorer as launcher."""
    settings = {"direction": "minimize", "storage": None, "study_name": None, "n_trials": 4, "n_jobs": 1} | kwargs
    sampler = None if sampler is None else OmegaConf.create(sampler)
    sweeper = OptunaSweeper(sampler=sampler, params=OmegaConf.create(PARAMS), **settings)
    sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
    sweeper.launcher = launcher or Scorer()
    return sweeper


def test_trials_run_in_batches_of_n_jobs_and_optuna_gets_what_the_jobs_returned(tmp_path):
    sweeper = make_sweeper(RANDOM, tmp_path, n_trials=5, n_jobs=2)
    sweeper.sweep(["n=2", "model=gpt_nano"])  # the command line fixes n
    assert [len(b) for b in sweeper.launcher.batches] == [2, 2, 1] and sweeper.job_idx == 5
    jobs = [job for batch in sweeper.launcher.batches for job in batch]
    assert all(job[-2:] == ["n=2", "model=gpt_nano"] for job in jobs)
    results = OmegaConf.to_container(OmegaConf.load(tmp_path / "optimization_results.yaml"))
    xs = [float(job[0].split("=")[1]) for job in jobs]
    assert results["best_value"] == pytest.approx(min((x - 0.3) ** 2 for x in xs))
    assert set(results["best_params"]) == {"x", "lr"}


def test_a_trial_without_a_value_fails_and_the_sweep_goes_on_a_raising_job_ends_it(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweeper = make_sweeper(RANDOM, tmp_path, launcher=Scorer({1: None}), storage=storage, study_name="s")
    sweeper.sweep([])
    states = [t.state for t in optuna.load_study(study_name="s", storage=storage).trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]

    sweeper = make_sweeper(RANDOM, tmp_path, launcher=Scorer({1: RuntimeError("boom")}), storage=storage,
                           study_name="s")  # fmt: skip
    with pytest.raises(RuntimeError, match="boom"):
        sweeper.sweep([])
    states = [t.state for t in optuna.load_study(study_name="s", storage=storage).trials]
    assert states[4:] == [TrialState.COMPLETE, TrialState.FAIL]  # recorded before the sweep ended


def test_an_interrupted_sweep_leaves_no_trial_running(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweeper = make_sweeper(RANDOM, tmp_path, launcher=Scorer(interrupt=1), storage=storage, study_name="s", n_jobs=2)
    with pytest.raises(KeyboardInterrupt):
        sweeper.sweep([])
    states = [t.state for t in optuna.load_study(study_name="s", storage=storage).trials]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] * 2


class RecordingTPE(optuna.samplers.TPESampler):
    """TPE that notes how many finished trials of its study it sees before each new one."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen: list[int] = []

    def before_trial(self, study, trial):
        self.seen.append(len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))))
        super().before_trial(study, trial)


def test_a_study_resumed_from_its_sqlite_file_adds_trials_its_sampler_sees_the_earlier_ones(tmp_path):
    def run(db: str, name: str) -> tuple[RecordingTPE, list[dict]]:
        tpe = {"_target_": f"{__name__}.RecordingTPE", "seed": 0, "n_startup_trials": 2}
        sweeper = make_sweeper(tpe, tmp_path / name, storage=f"sqlite:///{tmp_path / db}", study_name="s", n_trials=2)
        sweeper.sweep([])
        return sweeper.sampler, optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / db}").trials

    first, trials = run("optuna.db", "run1")
    second, resumed = run("optuna.db", "run2")
    _, fresh = run("fresh.db", "run3")  # the same seed on an empty study
    assert len(trials) == 2 and len(resumed) == 4 and [t.number for t in resumed] == [0, 1, 2, 3]
    assert [t.params for t in resumed[:2]] == [t.params for t in trials]
    assert first.seen == [0, 1] and second.seen == [2, 3]  # the second run's sampler saw the first run's trials
    assert [t.params for t in fresh] == [t.params for t in trials]  # seeded: without history, the same trials
    assert resumed[2].params != trials[0].params  # with history, TPE (past its 2 startup trials) chose otherwise
    best = OmegaConf.load(tmp_path / "run2" / "optimization_results.yaml")
    assert best.best_value == pytest.approx(min(t.value for t in resumed))  # the best of both runs


@pytest.mark.parametrize(
    "change, message",
    [({"arguments": ["n=choice(1, 5)"]}, "hydra.sweeper.params do not fit study 's': n was Categorical"),
     ({"arguments": ["lr=interval(1e-4, 1e-2)"]}, "hydra.sweeper.params do not fit study 's': lr was Float"),
     ({"arguments": ["n=range(1, 4)"]}, "hydra.sweeper.params do not fit study 's': n was Categorical"),
     ({"direction": "maximize"}, "hydra.sweeper.direction=['maximize'] but study 's'")],
)  # fmt: skip
def test_a_resumed_study_refuses_other_choices_or_direction(change, message, tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    make_sweeper(None, tmp_path, storage=storage, study_name="s", n_trials=1).sweep([])
    arguments = change.pop("arguments", [])
    with pytest.raises(SystemExit):
        make_sweeper(None, tmp_path, storage=storage, study_name="s", n_trials=1, **change).sweep(arguments)
    assert capsys.readouterr().err.startswith(f"Error: {message}")
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 1  # nothing ran


def test_a_resumed_study_takes_new_bounds():
    old = SearchSpace(["x=interval(0, 1)", "n=range(1, 4)"])
    study = optuna.create_study()
    study.tell(study.ask(old.distributions), 1.0)
    check_fits(study, SearchSpace(["x=interval(0.5, 2)", "n=range(1, 9)"]))  # no error
