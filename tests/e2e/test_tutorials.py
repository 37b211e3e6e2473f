"""The tutorial presets (conf/experiment/tutorial_*.yaml) against the tutorials' code (/work/notes/tutorials.md,
docs/tutorials.md), the tutorials sweeps and their budget, and the smoke sweep end to end with report.py."""

from __future__ import annotations

import csv
import dataclasses

import pytest
import torch
import yaml
from hydra.utils import instantiate

from datamodules.subword import build_pair_tokenizer, sides
from tests.e2e.conftest import ROOT
from tests.e2e.procs import run_train
from tests.e2e.test_sweeps import compose, read_summary, sweep_dirs

TRANSLATION = ["tutorial_hkproj", "tutorial_datacamp", "tutorial_samlynnevans", "tutorial_pytorch_translation",
               "tutorial_ajhalthor"]  # fmt: skip
LM = ["tutorial_karpathy", "tutorial_pytorch_lm"]
ADAM = {"name": "adam", "lr": 1e-4, "beta1": 0.9, "schedule": "constant", "warmup_steps": 0, "weight_decay": 0.0,
        "grad_clip": 0.0}  # fmt: skip
SEQ2SEQ = {"tie_embeddings": False, "head_bias": True, "activation": "relu", "positions": "sinusoidal", "n_head": 8,
           "n_embd": 512, "dropout": 0.1}  # fmt: skip

# What each tutorial's code does (the notes' tables), as config values.
SPEC = {
    "tutorial_hkproj": {
        "model": {**SEQ2SEQ, "n_enc_layer": 6, "n_dec_layer": 6, "d_ff": 2048, "norm": "pre", "embedding_scale": True,
                  "impl": "native", "max_len": 350},
        "data": {"tokenizer": "word", "shared_vocab": False, "word_split": "whitespace", "lowercase": False,
                 "min_frequency": 2, "max_sentences": 8},
        "optim": {**ADAM, "beta2": 0.999, "eps": 1e-9},
        "module": {"label_smoothing": 0.1, "beam_size": 1},
    },
    "tutorial_datacamp": {
        "model": {**SEQ2SEQ, "n_enc_layer": 6, "n_dec_layer": 6, "d_ff": 2048, "norm": "post", "embedding_scale": False,
                  "max_len": 100},
        "data": {"tokenizer": "word", "shared_vocab": False, "vocab_size": 5000, "max_sentences": 64},
        "optim": {**ADAM, "beta2": 0.98, "eps": 1e-9},
        "module": {"label_smoothing": 0.0, "beam_size": 1},
        "trainer": {"max_steps": 100},
    },
    "tutorial_samlynnevans": {
        "model": {**SEQ2SEQ, "n_enc_layer": 6, "n_dec_layer": 6, "d_ff": 2048, "norm": "pre", "embedding_scale": True,
                  "max_len": 80},
        "data": {"tokenizer": "word", "shared_vocab": False, "lowercase": True, "min_frequency": 1,
                 "max_tokens": 1500, "max_sentences": None},
        "optim": {**ADAM, "beta2": 0.98, "eps": 1e-9},
        "module": {"label_smoothing": 0.0, "beam_size": 3, "length_penalty": 0.7, "max_len_a": 0.0, "max_len_b": 80},
    },
    "tutorial_pytorch_translation": {
        "model": {**SEQ2SEQ, "impl": "torch", "n_enc_layer": 3, "n_dec_layer": 3, "d_ff": 512, "norm": "post",
                  "embedding_scale": True},
        "data": {"tokenizer": "word", "shared_vocab": False, "min_frequency": 1, "lowercase": False,
                 "max_sentences": 128},
        "optim": {**ADAM, "beta2": 0.98, "eps": 1e-9},
        "module": {"label_smoothing": 0.0, "beam_size": 1, "max_len_a": 1.0, "max_len_b": 5},
        "trainer": {"max_steps": 18 * 227},
    },
    "tutorial_ajhalthor": {
        "model": {**SEQ2SEQ, "n_enc_layer": 1, "n_dec_layer": 1, "d_ff": 2048, "norm": "post", "embedding_scale": False,
                  "max_len": 200},
        "data": {"tokenizer": "char", "shared_vocab": False, "max_sentences": 30},
        "optim": {**ADAM, "beta2": 0.999, "eps": 1e-8},
        "module": {"label_smoothing": 0.0, "beam_size": 1, "max_len_a": 0.0, "max_len_b": 200},
    },
    "tutorial_karpathy": {
        "model": {"n_layer": 6, "n_head": 6, "n_embd": 384, "dropout": 0.2, "bias": True, "norm": "pre",
                  "positions": "learned", "activation": "relu", "tie_embeddings": False, "head_bias": True,
                  "embedding_scale": False, "block_size": 256},
        "data": {"tokenizer": "char", "batch_size": 64, "block_size": 256},
        "optim": {"name": "adamw", "lr": 3e-4, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01,
                  "schedule": "constant", "warmup_steps": 0, "grad_clip": 0.0},
        "trainer": {"max_steps": 5000, "val_check_interval": 500},
    },
    "tutorial_pytorch_lm": {
        "model": {"n_layer": 2, "n_head": 2, "n_embd": 200, "d_ff": 200, "dropout": 0.2, "bias": True, "norm": "post",
                  "positions": "sinusoidal", "activation": "relu", "tie_embeddings": False, "head_bias": True,
                  "embedding_scale": True},
        "data": {"tokenizer": "word", "word_split": "basic_english", "min_frequency": 1, "batch_size": 20,
                 "block_size": 35},
        "optim": {"name": "sgd", "lr": 5.0, "momentum": 0.0, "weight_decay": 0.0, "schedule": "step", "gamma": 0.95,
                  "step_size": 316, "warmup_steps": 0, "grad_clip": 0.5},
        "trainer": {"max_steps": 3 * 316},
    },
}  # fmt: skip


@pytest.mark.parametrize("preset", SPEC)
def test_each_preset_is_its_tutorial(preset):
    cfg = compose([f"experiment={preset}"])
    for group, values in SPEC[preset].items():
        got = {k: cfg[group][k] for k in values}
        assert got == values, group
    model = instantiate(cfg.model)  # a valid model config of its family
    family = "seq2seq" if preset in TRANSLATION else "gpt"
    assert type(model).__module__ == f"models.{family}" and model.name == preset
    assert cfg.data._target_.endswith("Multi30kDataModule" if family == "seq2seq" else "ShakespeareDataModule")


def test_karpathys_gpt_counts_as_gpt_py_plus_the_qkv_biases():
    model = instantiate(compose(["experiment=tutorial_karpathy"]).model)
    model = dataclasses.replace(model, vocab_size=65)
    assert model.num_params() == 10_788_929 + 6 * 3 * 384  # gpt.py's 10,788,929 (K/Q/V without bias) + 6,912


def sweep_experiments(name: str) -> list[str]:
    params = compose([f"sweeps={name}"], return_hydra_config=True).hydra.sweeper.params
    return [e.strip() for e in str(params["experiment"]).split(",")]


def test_the_sweeps_cover_every_preset_of_their_family():
    assert sweep_experiments("tutorials") == TRANSLATION + LM == sweep_experiments("tutorials_smoke")
    assert sweep_experiments("tutorials_translation") == TRANSLATION
    assert sweep_experiments("tutorials_lm") == LM
    on_disk = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("tutorial_*.yaml"))
    assert on_disk == sorted(TRANSLATION + LM)


@pytest.mark.parametrize("preset", TRANSLATION + LM)
def test_the_budget_replaces_each_presets_length(preset):
    steps = compose([f"experiment={preset}", "sweeps=tutorials"])
    assert (steps.trainer.max_steps, steps.trainer.max_time, steps.trainer.val_check_interval) == (2000, None, 250)
    timed = compose([f"experiment={preset}", "sweeps=tutorials", "tutorials.budget=time", "tutorials.time=00:00:05:00"])
    assert timed.trainer.max_time == "00:00:05:00" and timed.trainer.max_steps == 1_000_000_000
    assert compose([f"experiment={preset}"]).get("tutorials") is None  # the preset alone: its own length


def test_family_sweeps_take_another_corpus_and_smoke_sizes_reach_one_family():
    cfg = compose(["experiment=tutorial_hkproj", "sweeps=tutorials_translation", "data=parallel", "data.tsv=p.tsv"])
    assert cfg.data._target_.endswith("ParallelCorpusDataModule") and cfg.data.tsv == "p.tsv"
    assert (cfg.data.tokenizer, cfg.data.shared_vocab, cfg.data.max_sentences) == ("word", False, 8)  # the preset's
    cfg = compose(["experiment=tutorial_pytorch_lm", "sweeps=tutorials_lm", "data=text", "data.path=c.txt"])
    assert (cfg.data.path, cfg.data.tokenizer, cfg.data.word_split) == ("c.txt", "word", "basic_english")
    smoke = compose(["experiment=tutorial_hkproj", "sweeps=tutorials_smoke"])
    assert (smoke.model.n_embd, smoke.model.n_enc_layer, smoke.data.limit) == (32, 1, 200)
    assert compose(["experiment=tutorial_hkproj", "sweeps=tutorials"]).model.n_embd == 512
    smoke = compose(["experiment=tutorial_karpathy", "sweeps=tutorials_smoke"])
    assert (smoke.model.n_embd, smoke.model.n_layer, smoke.data.block_size) == (32, 1, 16)


@pytest.mark.slow
def test_tutorials_smoke_sweep_then_report(run_script, tmp_path):
    code, out = run_train(["sweeps=tutorials_smoke", "logger=csv"], tmp_path=tmp_path, name="tutorials", timeout=400)
    assert code == 0, out[-4000:]
    (sweep,) = sweep_dirs(tmp_path)
    assert [r["status"] for r in read_summary(sweep)] == ["completed"] * 7
    run_script("report.py", str(sweep), "--wandb", "off")
    with open(sweep / "report" / "summary.csv", newline="") as f:
        rows = {r["preset"]: r for r in csv.DictReader(f)}
    assert list(rows) == TRANSLATION + LM
    for preset, row in rows.items():
        assert row["status"] == "ok" and int(row["params"]) > 0 and float(row["tokens_per_sec"]) > 0, preset
        scored = ("test_bleu", "best_val_bleu") if preset in TRANSLATION else ("word_accuracy",)
        unscored = {"test_bleu", "word_accuracy"} - set(scored)
        assert all(0 <= float(row[k]) <= 100 for k in scored) and not any(row[k] for k in unscored), preset
    assert rows["tutorial_ajhalthor"]["tokenizer"] == "char (separate)"
    assert rows["tutorial_pytorch_lm"]["tokenizer"] == "word"

    # Separate vocabularies: the model's sizes are the tokenizer's sides', both saved in the checkpoint and logged.
    hkproj = sweep / "0"
    ckpt = torch.load(hkproj / "checkpoints" / "last.ckpt", weights_only=False)
    hp = ckpt["hyper_parameters"]
    src, tgt = sides(build_pair_tokenizer(hp["tokenizer"]))
    assert (hp["model"]["src_vocab_size"], hp["model"]["tgt_vocab_size"]) == (src.vocab_size, tgt.vocab_size)
    assert src.vocab_size != tgt.vocab_size and hp["model"]["name"] == "tutorial_hkproj"
    assert f"source vocabulary {src.vocab_size:,}, target vocabulary {tgt.vocab_size:,}" in out
    assert yaml.safe_load((sweep / "3" / "config.yaml").read_text())["model"]["impl"] == "torch"
    # translate.py rebuilds both vocabularies from the checkpoint alone: the last weights translate the last
    # validation's sources (translations.txt) into the same hypotheses, decoded alike.
    last = (hkproj / "translations.txt").read_text(encoding="utf-8").split("=== step ")[-1]
    sources = [line[5:] for line in last.split("\n") if line.startswith("SRC: ")]
    hypotheses = [line[5:] for line in last.split("\n") if line.startswith("HYP: ")]
    assert len(sources) == len(hypotheses) == 5
    (tmp_path / "in.de").write_text("\n".join(sources) + "\n", encoding="utf-8")
    ckpt_path = f"ckpt_path={hkproj / 'checkpoints' / 'last.ckpt'}"
    decoding = ["beam_size=1", "max_len_a=1.0", "max_len_b=5"]  # the smoke sweep's validation decoding
    run_script("translate.py", ckpt_path, f"input={tmp_path / 'in.de'}", f"output={tmp_path / 'out.en'}", *decoding)
    assert (tmp_path / "out.en").read_text(encoding="utf-8").split("\n")[:5] == hypotheses
