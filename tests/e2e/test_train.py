"""train.py and sample.py end to end, on CPU with tiny sizes."""

import csv
import glob
import math
from pathlib import Path

import pytest
import torch
import yaml

from tests.e2e.conftest import TINY, run_dirs
from tests.wandb_records import summarize


def metrics(run: Path) -> list[dict]:
    with open(run / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_train_writes_checkpoints_config_metrics_and_samples(trained):
    run, output = trained
    assert f"Run directory: {run}" in output
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["n_layer"] == 2 and cfg["model"]["block_size"] == 32  # follows data.block_size
    assert cfg["trainer"]["precision"] == "32-true"
    rows = metrics(run)
    train_steps = [int(r["step"]) for r in rows if r["train/loss"]]
    val = [float(r["val/loss"]) for r in rows if r["val/loss"]]
    assert train_steps == [0, 1, 2, 3] and len(val) == 2
    lr_steps = [int(r["step"]) for r in rows if r["train/lr/decay"] and r["train/lr/no_decay"]]  # LearningRateMonitor
    assert lr_steps == train_steps
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)
    assert best["tformer_family"] == "gpt"
    (state,) = [v for k, v in best["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert state["best_model_score"].item() == pytest.approx(min(val))
    samples = (run / "samples.txt").read_text()
    assert samples.count("--- sample") == 3
    if torch.cuda.is_available():  # the CPU duration estimate is for CPU-only machines
        assert "No GPU found" not in output
    else:
        assert "No GPU found" in output and "experiment=shakespeare_char_modern" in output


@pytest.mark.slow
def test_sample_loads_the_checkpoint(trained, run_script):
    run, _ = trained
    ckpt = run / "checkpoints" / "best.ckpt"
    out = run_script("sample.py", f"ckpt_path={ckpt}", "prompt=ROMEO:", "num_samples=2", "max_new_tokens=25")
    chunks = out.stdout.split("--- sample ")[1:]
    assert len(chunks) == 2
    assert all(c.split("\n", 1)[1].startswith("ROMEO:") and len(c.split("\n", 1)[1].rstrip("\n")) == 31 for c in chunks)


@pytest.mark.slow
def test_resume_from_checkpoint(trained, run_script, tmp_path):
    run, _ = trained
    last = run / "checkpoints" / "last.ckpt"
    run_script("train.py", *TINY, f"ckpt_path={last}", "trainer.max_steps=6")
    (resumed,) = run_dirs(tmp_path)
    steps = [int(r["step"]) for r in metrics(resumed) if r["train/loss"]]
    assert steps == [4, 5]  # continues at step 4, does not start over
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 6


@pytest.mark.slow
def test_wandb_offline_run_holds_config_metrics_and_samples(run_script, tmp_path):
    out = run_script("train.py", *[a for a in TINY if a != "logger=csv"], "logger=wandb", "logger.wandb.project=t")
    assert "wandb sync" in out.output
    # W&B's service started ahead of wandb.init (training/loggers.start_wandb_service) with the same settings:
    # W&B would warn that environment variables changed after its session started
    assert "will be ignored" not in out.output and "wandb: ERROR" not in out.output
    (run,) = run_dirs(tmp_path)
    (run_file,) = glob.glob(str(run / "wandb" / "offline-run-*" / "run-*.wandb"))
    record = summarize(run_file)
    assert record["config"]["model"]["n_layer"] == 2 and record["config"]["data"]["block_size"] == 32
    assert record["run"].project == "t"
    history = record["history"]
    assert sum("train/loss" in h for h in history) == 4 and sum("val/loss" in h for h in history) == 2
    table = [h for h in history if h.get("samples/_type") == "table-file"]
    assert len(table) == 1 and table[0]["samples/nrows"] == 3


def csv_column(run: Path, key: str) -> list[float]:
    return [float(r[key]) for r in metrics(run) if r.get(key)]


@pytest.mark.slow
def test_bf16_mixed_precision_run_on_cpu(run_script, tmp_path):
    run_script("train.py", *TINY, "trainer.precision=bf16-mixed")
    (run,) = run_dirs(tmp_path)
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["precision"] == "bf16-mixed"
    losses, norms = csv_column(run, "train/loss"), csv_column(run, "train/grad_norm")
    assert len(losses) == len(norms) == 4 and all(math.isfinite(v) for v in losses + norms)
    assert len(csv_column(run, "val/loss")) == 2
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "samples.txt").is_file()


@pytest.mark.slow
def test_compiled_run_checkpoint_loads_in_uncompiled_sample(run_script, tmp_path):
    """torch.compile (inductor; its cache in TORCHINDUCTOR_CACHE_DIR, see tests/conftest.py) on a 1-layer GPT."""
    tiny = [a for a in TINY if not a.startswith("model.n_layer")]
    run_script("train.py", *tiny, "model.n_layer=1", "compile=true", timeout=600)
    (run,) = run_dirs(tmp_path)
    assert len(csv_column(run, "train/loss")) == 4
    ckpt = run / "checkpoints" / "best.ckpt"
    keys = torch.load(ckpt, weights_only=False)["state_dict"]
    assert keys and all(k.startswith("model.") and "_orig_mod" not in k for k in keys)  # plain parameter names
    out = run_script("sample.py", f"ckpt_path={ckpt}", "prompt=ROMEO:", "num_samples=1", "max_new_tokens=10")
    (sample,) = out.stdout.split("--- sample ")[1:]
    text = sample.split("\n", 1)[1].rstrip("\n")
    assert text.startswith("ROMEO:") and len(text) == 6 + 10


# --- bad input: each fails early with a message naming the field -------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=gpt_unknown"], "Could not find 'model/gpt_unknown'"),
        (["data.block_size=200000"], "data.block_size=200000 is larger than the data allows"),
    ],
    ids=["model-group", "data-length"],
)  # the checks before any data are unit tests (tests/training/test_checks.py); here Hydra's and the data's
def test_bad_input_fails_early_naming_the_field(run_script, overrides, message, tmp_path):
    out = run_script("train.py", *TINY, *overrides, check=False)
    assert out.returncode != 0
    assert message in out.output and "Traceback" not in out.output  # one clear message (docs/reliability.md)
    assert not list((tmp_path / "logs").glob("train/runs/*/checkpoints"))


@pytest.mark.slow
def test_missing_corpus_without_network(run_script, tmp_path):
    out = run_script(
        "train.py", *TINY, "data.url=http://127.0.0.1:9/input.txt", check=False, env={"DATA_DIR": str(tmp_path / "d")}
    )
    assert out.returncode != 0 and "tinyshakespeare.txt is missing" in out.output and "DATA_DIR" in out.output
    assert "Traceback" not in out.output and out.stderr.strip().splitlines()[-1].startswith("Error: ")


@pytest.mark.slow
def test_sample_rejects_unknown_characters_and_wrong_files(trained, run_script, tmp_path):
    run, _ = trained
    out = run_script("sample.py", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", 'prompt="ROMEO@"', check=False)
    assert out.returncode != 0 and "outside the model's character vocabulary: ['@']" in out.output
    torch.save({"state_dict": {}, "tformer_family": "seq2seq", "hyper_parameters": {}}, tmp_path / "s.ckpt")
    out = run_script("sample.py", f"ckpt_path={tmp_path / 's.ckpt'}", check=False)
    assert out.returncode != 0 and "holds a seq2seq model" in out.output
