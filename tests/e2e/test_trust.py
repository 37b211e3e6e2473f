"""Issue 22's probes, as a careful user and an attacker run them: a checkpoint is data, never code; a diverged run
stops, never overwrites; secrets stay secret; small mistakes get one-line answers. Signals: tests/e2e/test_signals.py.
docs/reliability.md lists each case with what the user sees."""

from __future__ import annotations

import pathlib
import shutil
from pathlib import Path

import pytest
import torch

from tests.e2e.conftest import TINY, run_dirs

pytestmark = pytest.mark.slow


class Marker:
    """Unpickled with full pickle, this creates a file (a stand-in for a shell command: no command is run)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


def test_no_entry_point_runs_the_code_of_a_malicious_checkpoint(trained, run_script, tmp_path):
    run = Path(shutil.copytree(trained[0], tmp_path / "run"))  # eval.py reads the run's config.yaml beside it
    evil = run / "checkpoints" / "best.ckpt"
    ckpt = torch.load(evil, weights_only=True)
    ckpt["callbacks"]["x"] = Marker(tmp_path / "code-ran")  # hidden inside a real checkpoint
    torch.save(ckpt, evil)
    refused = f"ckpt_path={evil} was refused: it names code ("
    calls = {
        "sample.py": [f"ckpt_path={evil}"],
        "eval.py": [f"ckpt_path={evil}"],
        "translate.py": [f"ckpt_path={evil}", "text=Hallo"],
        "train.py": [*TINY, f"ckpt_path={evil}", "trainer.max_steps=8"],
    }
    for script, args in calls.items():
        result = run_script(script, *args, check=False)
        assert result.returncode == 1 and "Traceback" not in result.output, (script, result.output[-2000:])
        assert last_line(result.stderr).startswith(f"Error: {refused}"), (script, result.stderr[-2000:])
        assert "trust_checkpoint=true loads it with full pickle (which runs whatever code it holds)" in result.stderr
    result = run_script("average.py", str(run / "checkpoints" / "last.ckpt"), str(evil), "-o", str(tmp_path / "a.ckpt"),
                        check=False)  # fmt: skip
    assert result.returncode == 2 and f"checkpoint={evil} was refused" in result.stderr
    assert "--trust-checkpoint loads it" in result.stderr
    assert not (tmp_path / "code-ran").exists() and not (tmp_path / "a.ckpt").exists()


def finite(path: Path) -> bool:
    state = torch.load(path, weights_only=True)["state_dict"]
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_a_diverged_run_stops_in_one_line(run_script, tmp_path):
    args = [*TINY, "optim.lr=100", "optim.warmup_steps=0", "trainer.max_steps=60", "trainer.val_check_interval=5"]
    result = run_script("train.py", *args, check=False)
    assert result.returncode == 1 and "Traceback" not in result.output, result.output[-3000:]
    line = last_line(result.stderr)
    assert line.startswith("Error: training diverged: train/loss is not finite (nan or inf) at step "), line
    assert "of 60, likely a learning rate too high (optim.lr=100: lower it" in line
    (run,) = run_dirs(tmp_path)
    assert f"the last good checkpoint is {run / 'checkpoints' / 'last.ckpt'} (step " in line
    assert finite(run / "checkpoints" / "best.ckpt") and finite(run / "checkpoints" / "last.ckpt")
    assert not (run / "samples.txt").exists() and "probability tensor" not in result.output


def test_no_secret_reaches_the_disk(run_script, tmp_path):
    secrets = ["+api_key=S3CR3T-A", "+db.password=S3CR3T-B", "+my_token=S3CR3T-C"]
    run_script("train.py", "-m", *TINY, "logger=wandb", *secrets)  # a multirun of one job: its files too
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    files = [p for p in sweep.rglob("*") if p.is_file()]
    assert len(files) > 20 and any(p.suffix == ".wandb" for p in files)
    leaked = [str(p.relative_to(sweep)) for p in files if b"S3CR3T" in p.read_bytes()]
    assert leaked == []
    config = (sweep / "0" / "config.yaml").read_text()
    assert "api_key: <redacted>" in config and "password: <redacted>" in config
    assert "tokenizer: char" in config and "tiktoken_dir: " in config and "max_new_tokens: 40" in config
    (wandb_run,) = sweep.glob("0/wandb/offline-run-*/run-*.wandb")  # what `wandb sync` uploads
    recorded = wandb_run.read_bytes()
    assert b"+api_key=<redacted>" in recorded  # the command line W&B keeps, redacted
    assert b'"tokenizer":"char"' in recorded  # settings stay readable in the W&B config


def test_small_mistakes_get_one_line_answers(trained, run_script, tmp_path):
    best = trained[0] / "checkpoints" / "best.ckpt"
    result = run_script("sample.py", f"ckpt_path={best}", "top_k=-3", check=False)
    assert last_line(result.stderr) == "Error: top_k=-3 must be a positive integer (or null: no top-k filter)"
    result = run_script("train.py", *TINY, "model.n_embdd=64", check=False)
    assert result.returncode == 1 and last_line(result.stderr) == (
        "Error: model.n_embdd is not a setting (did you mean model.n_embd?); to add a new key, write +model.n_embdd=64"
    )
    result = run_script("train.py", *TINY, "+module.foo=1", check=False)
    assert result.returncode == 1 and "Traceback" not in result.output
    assert last_line(result.stderr).startswith("Error: module.foo is not an option of the gpt LightningModule")
    assert run_dirs(tmp_path) == []  # the run that failed its checks left no directory behind
    text = tmp_path / "held_out.txt"
    text.write_text("ROMEO: 漢字 and ☃\n" * 50, encoding="utf-8")
    result = run_script("eval.py", f"ckpt_path={best}", f"data.val={text}", check=False)
    line = last_line(result.stderr)
    assert result.returncode == 1 and line.startswith(f"Error: data.val={text}: the text holds characters outside")
    assert "remove those characters from the file" in line
