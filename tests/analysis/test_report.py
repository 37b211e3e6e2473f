"""analysis/report.py on hand-made run directories: the numbers in the table come from the runs' files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from analysis.plots import PLOTS, write_plots
from analysis.report import make_report
from analysis.runs import find_runs, load_runs
from tests.figures import assert_figures
from tests.wandb_records import summarize

GENERATION = {"samples": [{"time": 0.5, "word_accuracy": 0.75}, {"time": 0.7, "word_accuracy": 0.5}],
              "summary": {"time_mean": 0.6, "word_accuracy": 0.625}, "settings": {"num_words": 4}}  # fmt: skip


def make_run(
    root: Path, name: str, *, n_layer: int, val: list[float] | None, measure: bool = True, generation: bool = False
) -> Path:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(f"- model=gpt_nano\n- model.n_layer={n_layer}\n")
    (run / "config.yaml").write_text(
        "data:\n  batch_size: 8\n  block_size: 32\n  tokenizer: char\n"
        f"model:\n  n_layer: {n_layer}\n  n_head: 2\n  n_embd: 32\n  bias: false\n  block_size: 32\n"
        "logger:\n  wandb:\n    project: sizes\n    group: multirun-7\n"
    )
    if val is not None:
        (run / "csv").mkdir()
        with open(run / "csv" / "metrics.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["epoch", "perf/step_time", "perf/tokens_per_sec", "step", "train/loss", "val/loss"])
            for i, v in enumerate(val):
                w.writerow([0, "", "", i, 4.0 - i / 10, ""])
                w.writerow([0, 0.5 + i, 100.0 * (i + 1), i, "", v])
    if measure:
        (run / "measure.json").write_text(
            json.dumps({"params": 1234 * n_layer, "total_time": 9.5, "peak_memory_mb": 400.0, "step_time": 0.25,
                        "estimated_memory_mb": 1.5, "memory_kind": "process_peak_rss", "memory_at_start_mb": 380.0})
        )  # fmt: skip
    if generation:
        (run / "generation.json").write_text(json.dumps(GENERATION))
    return run


def test_report_table_and_plots(tmp_path, monkeypatch):
    sweep = tmp_path / "multirun"
    make_run(sweep, "0", n_layer=1, val=[3.0, 2.5, 2.75], generation=True)
    make_run(sweep, "1", n_layer=2, val=[3.1, 2.2], measure=False)
    make_run(sweep, "2", n_layer=3, val=None, measure=False)
    (sweep / "1" / "wandb" / "run-x" / "files").mkdir(parents=True)  # W&B's own config.yaml is no run
    (sweep / "1" / "wandb" / "run-x" / "files" / "config.yaml").write_text("a: 1\n")
    assert [p.name for p in find_runs([sweep])] == ["0", "1", "2"]

    monkeypatch.setenv("WANDB_MODE", "offline")
    result = make_report([sweep], wandb_mode="on")
    out = sweep / "report"
    assert result["out"] == out
    assert_figures(out)
    with open(out / "summary.csv", newline="") as f:
        rows = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(f)}
    assert float(rows["0"]["best_val_loss"]) == 2.5
    assert float(rows["1"]["best_val_loss"]) == 2.2
    assert rows["0"]["params"] == "1234"  # from measure.json
    assert rows["0"]["step_time"] == "0.25"
    assert float(rows["1"]["step_time"]) == pytest.approx(1.0)  # no measure.json: median of the CSV column
    assert rows["1"]["params"] == str(2 * (12 * 32 * 32 + 2 * 32) + 32 + 65 * 32 + 32 * 32)  # from the sizes
    assert rows["0"]["status"] == "ok" and rows["0"]["word_accuracy"] == "0.625"
    assert rows["1"]["status"].startswith("incomplete")
    assert rows["2"]["status"].startswith("failed") and "no csv/metrics.csv" in rows["2"]["status"]
    assert rows["0"]["run"] == "0: n_layer=1"
    md = (out / "summary.md").read_text()
    assert "Best val loss: 2.2000 (1: n_layer=2)" in md
    assert "peak RSS" in md
    # the figures went to an offline W&B run inside the report directory
    images = list((out / "wandb").glob("offline-run-*/files/media/images/report/*.png"))
    assert len(images) == len(PLOTS)
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    record = summarize(run_file)["run"]  # in the sweep's W&B project and group, beside its jobs
    assert record.project == "sizes" and record.run_group == "multirun-7"


def test_report_refuses_paths_without_runs(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no run directory"):
        find_runs([tmp_path])
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        find_runs([tmp_path / "missing"])


def test_each_figure_plots_the_runs_numbers(tmp_path):
    sweep = tmp_path / "multirun"
    make_run(sweep, "0", n_layer=1, val=[3.0, 2.5, 2.75], generation=True)
    make_run(sweep, "1", n_layer=2, val=[3.1, 2.2], measure=False)
    make_run(sweep, "2", n_layer=3, val=None, measure=False)  # failed: in no figure
    (tmp_path / "out").mkdir()
    drawn = {path.name: data for path, data in write_plots(load_runs([sweep]), tmp_path / "out").items()}
    assert set(drawn) == set(PLOTS)
    a, b = "0: n_layer=1", "1: n_layer=2"
    params_b = 2 * (12 * 32 * 32 + 2 * 32) + 32 + 65 * 32 + 32 * 32  # from its sizes (no measure.json)
    assert drawn == {
        "loss_curves.png": {  # one point per logged step
            f"train/loss {a}": [(0, 4.0), (1, 3.9), (2, 3.8)],
            f"val/loss {a}": [(0, 3.0), (1, 2.5), (2, 2.75)],
            f"train/loss {b}": [(0, 4.0), (1, 3.9)],
            f"val/loss {b}": [(0, 3.1), (1, 2.2)],
        },
        "val_loss_vs_params.png": {a: [(1234, 2.5)], b: [(params_b, 2.2)]},  # the best val loss of each run
        "times.png": {f"step_time {a}": [0.25], f"step_time {b}": [1.0], f"total_time {a}": [9.5]},
        "inference_time.png": {a: [0.5, 0.7]},  # every sample's time
        "word_accuracy.png": {a: [0.625, 0.75, 0.5]},  # pooled, then each sample's
        "memory.png": {a: [1.5, 400.0, 380.0]},  # estimated, measured peak, at fit start
    }
    assert_figures(tmp_path / "out")


def make_translation_run(root: Path, name: str, preset: str) -> Path:
    """A seq2seq run as train.py leaves it: no generation.json, BLEU in metrics.csv, its preset in .hydra/hydra.yaml."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(f"- experiment={preset}\n")
    (run / ".hydra" / "hydra.yaml").write_text(
        f"hydra:\n  run:\n    dir: ${{paths.log_dir}}/x\n  runtime:\n    choices:\n      experiment: {preset}\n"
    )
    (run / "config.yaml").write_text(
        "data:\n  tokenizer: word\n  shared_vocab: false\n  max_tokens: 512\n"
        "model:\n  _target_: models.seq2seq.Seq2SeqConfig\n  n_enc_layer: 6\n  n_dec_layer: 3\n  n_head: 8\n"
        "  n_embd: 512\n  vocab_size: 900\n"
    )
    (run / "csv").mkdir()
    with open(run / "csv" / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "val/loss", "val/bleu", "test/bleu"])
        w.writerows([[0, 10, 5.0, 1.5, ""], [0, 20, 4.0, 3.25, ""], [0, 30, 4.5, 2.0, ""], [0, 30, "", "", 2.75]])
    (run / "measure.json").write_text(json.dumps({"params": 4321, "tokens_per_sec": 99.0}))
    return run


def test_translation_runs_get_their_preset_and_bleu_and_need_no_generation_file(tmp_path):
    sweep = tmp_path / "multirun"
    make_translation_run(sweep, "0", "tutorial_hkproj")
    make_run(sweep, "1", n_layer=2, val=[3.0, 2.5], generation=True)
    make_report([sweep], wandb_mode="off")
    with open(sweep / "report" / "summary.csv", newline="") as f:
        mt, lm = list(csv.DictReader(f))
    assert mt["status"] == "ok" and mt["preset"] == "tutorial_hkproj" and mt["tokenizer"] == "word (separate)"
    assert (mt["n_layer"], mt["params"], mt["steps"], mt["best_val_loss"]) == ("6+3", "4321", "30", "4.0")
    assert (mt["best_val_bleu"], mt["test_bleu"], mt["word_accuracy"]) == ("3.25", "2.75", "")
    assert (lm["preset"], lm["tokenizer"], lm["test_bleu"], lm["word_accuracy"]) == ("", "char", "", "0.625")
    md = (sweep / "report" / "summary.md").read_text()
    assert "| tutorial_hkproj | ok | word (separate) |" in md and "| 3.25 | 2.75 |" in md
    assert "BLEU: sacreBLEU" in md


def test_a_gpt_without_measure_json_is_counted_with_its_options(tmp_path):
    """tutorial_pytorch_lm's options (sinusoidal positions, an untied biased head, d_ff) change the count."""
    run = make_run(tmp_path / "m", "0", n_layer=2, val=[3.0], measure=False)
    (run / "config.yaml").write_text(
        "data:\n  batch_size: 8\n  block_size: 32\n  tokenizer: word\n"
        "model:\n  n_layer: 2\n  n_head: 2\n  n_embd: 32\n  bias: false\n  block_size: 32\n  vocab_size: 100\n"
        "  d_ff: 48\n  tie_embeddings: false\n  head_bias: true\n  positions: sinusoidal\n"
    )
    (row,) = [r.row for r in load_runs([run])]
    block = 4 * 32 * 32 + 2 * 32 * 48 + 2 * 32  # attention, the MLP at d_ff 48, two LayerNorms (no biases)
    assert row["params"] == 2 * block + 32 + 100 * 32 + 100 * 32 + 100  # ln_f, embedding, untied head + its bias
