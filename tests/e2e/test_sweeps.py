"""Sweeps end to end: Hydra multiruns, the named sweeps in sweeps/ and a W&B sweep definition's command."""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import sys

import pytest
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.e2e.procs import ROOT, finish, run_train, start, train_env
from tests.figures import assert_figures
from tests.wandb_records import run_info

TINY_WANDB = [
    "model=gpt_nano",
    "model.n_layer=1",
    "model.n_embd=32",
    "model.n_head=2",
    "data.block_size=32",
    "trainer=debug",
    "sample.max_new_tokens=20",
    "cpu_time_check=false",
    "callbacks.generation.num_samples=2",
    "callbacks.generation.num_words=5",
]


def sweep_dirs(tmp_path):
    return sorted((tmp_path / "logs" / "train" / "multiruns").iterdir())


def read_summary(sweep) -> list[dict]:
    with open(sweep / "summary.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_multirun_jobs_get_own_dirs_and_wandb_runs_in_one_group(tmp_path):
    code, out = run_train(["-m", *TINY_WANDB, "data.batch_size=4,8"], tmp_path=tmp_path, name="multirun")
    assert code == 0, out[-4000:]
    (sweep,) = sweep_dirs(tmp_path)
    jobs = [sweep / "0", sweep / "1"]
    runs = [run_info(job) for job in jobs]  # each job: exactly one offline W&B run in its own dir
    assert runs[0]["group"] == runs[1]["group"] == sweep.name
    for job, run, batch in zip(jobs, runs, (4, 8)):
        assert (job / "checkpoints" / "last.ckpt").is_file() and (job / "csv" / "metrics.csv").is_file()
        config = yaml.safe_load((job / "config.yaml").read_text())
        assert config["data"]["batch_size"] == batch
        assert config["logger"]["wandb"]["group"] == sweep.name
        assert run["name"] == f"shakespeare_char-gpt_nano-data.batch_size={batch}"
        assert {f"batch_size={batch}", "block_size=32", "n_embd=32", "n_head=2", "n_layer=1"} <= set(run["tags"])
        assert run["exit_code"] == 0  # finished (wandb.finish) before the next job started
        status = json.loads((job / "status.json").read_text())
        assert status["status"] == "completed" and status["val_loss"] > 0
    assert [r["status"] for r in read_summary(sweep)] == ["completed", "completed"]


@pytest.mark.slow
def test_deconstructing_smoke_sweep(tmp_path):
    code, out = run_train(["sweeps=deconstructing_smoke"], tmp_path=tmp_path, name="deconstructing", timeout=400)
    assert code == 0, out[-4000:]
    (sweep,) = sweep_dirs(tmp_path)
    assert sweep.name.startswith("deconstructing_smoke_")
    study = yaml.safe_load((ROOT / "sweeps" / "deconstructing_smoke.yaml").read_text())["deconstructing"]["models"]
    for job, name in enumerate(("small", "medium", "large")):
        config = yaml.safe_load((sweep / str(job) / "config.yaml").read_text())
        sizes = {k: config["data"][k] for k in ("batch_size", "block_size")}
        sizes |= {k: config["model"][k] for k in ("n_embd", "n_head", "n_layer")}
        assert sizes == study[name]
        assert (sweep / str(job) / "checkpoints" / "best.ckpt").is_file()
        run = run_info(sweep / str(job))
        assert run["group"] == sweep.name and "deconstructing" in run["tags"]
    assert [r["status"] for r in read_summary(sweep)] == ["completed"] * 3

    # ... and report.py turns the study into its table and every plot, with the runs' own numbers
    report = start([sys.executable, "report.py", str(sweep), "--wandb", "off"], env=train_env(tmp_path),
                   log=tmp_path / "report.log")  # fmt: skip
    (code,) = finish([report], timeout=300)
    assert code == 0, (tmp_path / "report.log").read_text()[-4000:]
    assert_figures(sweep / "report")
    with open(sweep / "report" / "summary.csv", newline="") as f:
        rows = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(f)}
    for job in ("0", "1", "2"):
        with open(sweep / job / "csv" / "metrics.csv", newline="") as f:
            val = [float(r["val/loss"]) for r in csv.DictReader(f) if r.get("val/loss")]
        measured = json.loads((sweep / job / "measure.json").read_text())
        generation = json.loads((sweep / job / "generation.json").read_text())["summary"]
        assert rows[job]["status"] == "ok"
        assert float(rows[job]["best_val_loss"]) == pytest.approx(min(val))
        assert int(rows[job]["params"]) == measured["params"]
        assert float(rows[job]["word_accuracy"]) == pytest.approx(generation["word_accuracy"])
    assert "Best val loss" in (sweep / "report" / "summary.md").read_text()


def expand_agent_command(definition: dict, params: dict) -> list[str]:
    """The command `wandb agent` runs for one sampled parameter set (wandb/wandb_agent.py, _command_run)."""
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    command = sweep_utils.create_sweep_command(list(definition["command"]))
    sweep_vars = sweep_utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
    sweep_vars |= {"interpreter": [sys.executable], "program": [definition["program"]], "env": ["/usr/bin/env"]}
    expanded = []
    for c in map(str, command):
        expanded += sweep_vars.get(c[2:-1]) or [] if c.startswith("${") and c.endswith("}") else [c]
    return expanded


def sample(parameters: dict, seed: int = 0) -> dict:
    rng = random.Random(seed)
    return {k: rng.choice(p["values"]) if "values" in p else p["min"] for k, p in parameters.items()}


@pytest.mark.slow
def test_wandb_sweep_definition_runs_train_py(tmp_path):
    definition = yaml.safe_load((ROOT / "sweeps" / "wandb_sizes_smoke.yaml").read_text())
    params = sample(definition["parameters"])
    params["model.n_head"] = 2  # every sampled n_embd (16, 32) divides by 2
    cmd = expand_agent_command(definition, params)
    assert cmd[:3] == ["/usr/bin/env", sys.executable, "train.py"]
    assert f"model.n_layer={params['model.n_layer']}" in cmd and "trainer=debug" in cmd
    (code,) = finish([start(cmd, env=train_env(tmp_path), log=tmp_path / "agent_run.log")], timeout=300)
    assert code == 0, (tmp_path / "agent_run.log").read_text()[-4000:]
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    for key, value in params.items():
        group, name = key.split(".")
        assert config[group][name] == value
    assert "wandb_sweep" in config["tags"]


def test_full_wandb_sweep_definition_expands_to_valid_overrides():
    """Every parameter of the full definition is a key of the composed train config (no typos reach the agent)."""
    definition = yaml.safe_load((ROOT / "sweeps" / "wandb_sizes.yaml").read_text())
    assert definition["metric"] == {"name": "val/loss", "goal": "minimize"}
    cmd = expand_agent_command(definition, sample(definition["parameters"]))
    overrides = [c for c in cmd[3:]]
    cfg = compose(overrides)
    for key in definition["parameters"]:
        group, name = key.split(".")
        assert name in cfg[group], key


def compose(overrides: list[str], **kwargs):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import training.config  # noqa: F401  (resolvers)

    os.environ["TFORMER_ROOT"] = str(ROOT)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides, **kwargs)


GRIDS = {  # sweep -> number of jobs of its grid
    "deconstructing": 3,
    "deconstructing_smoke": 3,
    "model_size": 18,
    "model_size_smoke": 4,
    "context_batch": 9,
    "context_batch_smoke": 4,
}


@pytest.mark.parametrize("name", [*GRIDS, "optuna", "optuna_smoke"])
def test_named_sweeps_compose(name):
    cfg = compose([f"sweeps={name}"], return_hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert f"/multiruns/{name}_" in cfg.hydra.sweep.dir
    params = cfg.hydra.sweeper.params
    if name in GRIDS:
        values = [[yaml.safe_load(v) for v in str(v).split(",")] for v in params.values()]
        jobs = list(itertools.product(*values))
        assert len(jobs) == GRIDS[name]
        for job in jobs:  # every job of the grid is a valid model (n_embd divisible by n_head, ...)
            job_cfg = cfg.copy()
            for key, value in zip(params, job):
                OmegaConf.update(job_cfg, key, value)
            instantiate(job_cfg.model)
    else:  # the project's sweeper (conf/hydra/sweeper/tformer_optuna.yaml), also beside Hydra's Optuna plugin
        assert cfg.hydra.sweeper._target_ == "hydra_plugins.tformer_optuna_sweeper.optuna_sweeper.OptunaSweeper"
        assert cfg.hydra.sweeper.direction == "minimize"
        assert set(params) >= {"optim.lr", "model.n_layer", "model.n_embd", "model.n_head"}


@pytest.mark.parametrize("name", ["deconstructing_smoke", "model_size_smoke", "context_batch_smoke", "tutorials_smoke"])
def test_smoke_sweeps_cause_no_warmup_warning(name):
    cfg = compose([f"sweeps={name}"], return_hydra_config=True)
    experiments = str(cfg.hydra.sweeper.params.get("experiment", "")).replace(" ", "").split(",")
    for experiment in [e for e in experiments if e] or [None]:
        job = compose([f"sweeps={name}", *([f"experiment={experiment}"] if experiment else [])])
        assert job.optim.warmup_steps <= job.trainer.max_steps, experiment


def test_deconstructing_smoke_models_grow_as_their_names_say():
    def params(name):
        cfg = compose(["sweeps=deconstructing_smoke", f"deconstructing.model={name}"])
        return instantiate(cfg.model, vocab_size=65).num_params(), cfg.data.block_size

    small, medium, large = (params(name) for name in ("small", "medium", "large"))
    assert small < medium < large  # parameters, then context


@pytest.mark.parametrize(
    "name, sizes",
    [
        ("small", (8, 4, 64, 4, 3)),
        ("medium", (32, 128, 384, 6, 4)),
        ("large", (64, 256, 384, 6, 4)),
    ],
)
def test_deconstructing_has_the_studys_three_models(name, sizes):
    cfg = compose(["sweeps=deconstructing", f"deconstructing.model={name}"])
    got = (cfg.data.batch_size, cfg.data.block_size, cfg.model.n_embd, cfg.model.n_head, cfg.model.n_layer)
    assert got == sizes and cfg.model.block_size == cfg.data.block_size


@pytest.mark.slow
def test_optuna_smoke_sweep_minimises_the_returned_val_loss(tmp_path):
    pytest.importorskip("optuna")
    args = ["sweeps=optuna_smoke", "hydra.sweeper.n_trials=2", "logger=csv"]
    code, out = run_train(args, tmp_path=tmp_path, name="optuna", timeout=400)
    assert code == 0, out[-4000:]
    (sweep,) = sweep_dirs(tmp_path)
    losses = [float(r["val_loss"]) for r in read_summary(sweep)]
    assert len(losses) == 2
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(min(losses))  # what train.py returned is what Optuna ranked
    assert set(result["best_params"]) == {"optim.lr", "model.dropout", "model.n_layer", "model.n_embd",
                                          "model.n_head", "data.batch_size"}  # fmt: skip


@pytest.mark.slow
def test_optuna_sweep_resumed_from_its_sqlite_file_adds_trials_its_sampler_saw(tmp_path):
    """The storage docs/sweeps.md documents: a second run of the sweep continues the study kept in the file."""
    optuna = pytest.importorskip("optuna")
    from hydra_plugins.tformer_optuna_sweeper._study import SearchSpace

    db = tmp_path / "study" / "optuna.db"  # the folder does not exist yet
    args = ["sweeps=optuna_smoke", "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage=sqlite:///{db}",
            "logger=csv", "callbacks.generation.num_samples=2", "sample.max_new_tokens=20"]  # fmt: skip
    for run in ("first", "second"):
        code, out = run_train(args, tmp_path=tmp_path, name=run, timeout=400)
        assert code == 0, out[-4000:]
    first, second = sweep_dirs(tmp_path)
    cfg = compose(["sweeps=optuna_smoke"], return_hydra_config=True).hydra.sweeper
    trials = optuna.load_study(study_name=cfg.study_name, storage=f"sqlite:///{db}").trials
    assert [t.number for t in trials] == [0, 1, 2, 3] and {t.state.name for t in trials} == {"COMPLETE"}
    returned = [float(r["val_loss"]) for sweep in (first, second) for r in read_summary(sweep)]
    assert [t.value for t in trials] == pytest.approx(returned)  # each run's jobs, in order, are the study's trials
    best = yaml.safe_load((second / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(returned))  # the second run ranks the first run's trials too

    # The sampler is seeded (seed=${seed}): on an empty study it proposes the first run's trial again, so the second
    # run's other proposal comes from the 2 trials it found (TPE past its n_startup_trials=2).
    space = SearchSpace([f"{key}={value}" for key, value in cfg.params.items()])
    fresh = optuna.create_study(sampler=instantiate(cfg.sampler, _recursive_=False)).ask(space.distributions)
    assert fresh.params == trials[0].params
    assert trials[2].params != trials[0].params


def test_fsdp_preset_shards_each_block():
    from lightning.pytorch.strategies import FSDPStrategy

    from models.blocks import Block

    cfg = compose(["trainer=fsdp"])
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, FSDPStrategy) and cfg.trainer.accelerator == "gpu"
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {Block}
    assert strategy._state_dict_type == "full"  # one checkpoint file that sample.py can read


def test_slurm_launcher_config():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = compose(["hydra/launcher=slurm", "sweeps=model_size"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.tasks_per_node == launcher.gpus_per_node == 1 and launcher.timeout_min == 240
