"""Your own corpora through train.py, then eval.py on the checkpoints (both families), and the large-corpus bench."""

from __future__ import annotations

import csv
import json
import random
import shutil

import pytest
from hydra import compose, initialize_config_dir

from lightning_modules.metrics import corpus_bleu, corpus_chrf
from tests import zygote
from tests.datamodules.test_text import unicode_text
from tests.e2e.conftest import ROOT, TINY, run_dirs

ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def eval_config(*overrides: str):
    """conf/eval.yaml composed as eval.py composes it (data.* on the training run's data config)."""
    import eval as eval_script  # the entry point's argument rewriting

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="eval", overrides=eval_script.hydra_args(list(overrides)))


def best_val_loss(run) -> float:
    with open(run / "csv" / "metrics.csv") as f:
        return min(float(r["val/loss"]) for r in csv.DictReader(f) if r["val/loss"])


@pytest.mark.slow
def test_gpt_on_a_new_alphabet_then_eval(run_script, tmp_path):
    corpus = tmp_path / "scriptorium.txt"
    corpus.write_text(unicode_text(400), encoding="utf-8")
    data = ["data=text", f"data.path={corpus}", "trainer.limit_val_batches=1.0"]
    run_script("train.py", *TINY, *data, env=ONE_THREAD)
    (run,) = run_dirs(tmp_path)
    config = (run / "config.yaml").read_text(encoding="utf-8")
    assert "run_name: scriptorium-gpt_nano" in config and "- scriptorium" in config  # named after the corpus

    out = run_script("eval.py", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "num_samples=2", env=ONE_THREAD)
    (scores_dir,) = run_dirs(tmp_path, "eval")
    (row,) = json.loads((scores_dir / "scores.json").read_text())["scores"]
    assert row["split"] == "val" and row["loss"] == pytest.approx(best_val_loss(run), rel=1e-4)  # what training saw
    assert row["perplexity"] == pytest.approx(2.718281828 ** row["loss"]) and 0 <= row["word_accuracy"] <= 1
    assert "perplexity" in out.output and (scores_dir / "samples.txt").is_file()

    # Any text, any split, without repeating a training override: data.val on the run's own data config.
    held_out = tmp_path / "held_out.txt"
    held_out.write_text(unicode_text(30, seed=9), encoding="utf-8")
    from analysis.evaluate import evaluate

    ckpt = f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}"
    cfg = eval_config(
        ckpt, f"data.val={held_out}", "splits=[val,train]", "num_samples=0", f"output_dir={tmp_path / 'e'}"
    )
    val, train = evaluate(cfg)
    assert val["tokens"] == len(held_out.read_text(encoding="utf-8")) - 1  # every target token once
    assert train["tokens"] == len(corpus.read_text(encoding="utf-8")) - 1  # data.val given: all of path trains
    assert val["loss"] > 0 and "word_accuracy" not in val

    # The wrong family of corpus, and a checkpoint moved away from its run's config.
    with pytest.raises(ValueError, match=r"holds a gpt model, but data=.* is a corpus for seq2seq models"):
        evaluate(eval_config(ckpt, "data=parallel", f"data.tsv={held_out}", f"output_dir={tmp_path / 'e2'}"))
    alone = tmp_path / "alone.ckpt"
    shutil.copy(run / "checkpoints" / "best.ckpt", alone)
    with pytest.raises(ValueError, match=r"no data config: .*alone.ckpt has no training run's config.yaml"):
        evaluate(eval_config(f"ckpt_path={alone}", f"output_dir={tmp_path / 'e3'}"))


def write_pairs(path_src, path_tgt, pairs):
    path_src.write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    path_tgt.write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    return str(path_src), str(path_tgt)


TINY_SEQ2SEQ = [
    "model=seq2seq_small", "model.n_enc_layer=1", "model.n_dec_layer=1", "model.n_embd=32", "model.n_head=2",
    "model.d_ff=64", "data.vocab_size=300", "data.max_tokens=256", "data.max_len=32", "trainer=debug", "logger=csv",
]  # fmt: skip


@pytest.mark.slow
def test_seq2seq_on_a_tsv_then_eval_on_two_test_sets(run_script, tmp_path):
    rng = random.Random(0)
    words = {"one": "un", "two": "deux", "red": "rouge", "cat": "chat", "dog": "chien", "big": "grand"}

    def pair():
        chosen = rng.choices(list(words), k=rng.randint(1, 4))
        return " ".join(chosen), " ".join(words[w] for w in chosen)

    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in (pair() for _ in range(200))), encoding="utf-8")
    a = write_pairs(tmp_path / "a.en", tmp_path / "a.fr", [pair() for _ in range(7)])
    b = write_pairs(tmp_path / "b.en", tmp_path / "b.fr", [pair() for _ in range(5)])
    # module.beam_size is a plain override (declared by conf/module/seq2seq.yaml)
    data = ["data=parallel", f"data.tsv={tsv}", "data.test_fraction=0.05"]
    run_script("train.py", *TINY_SEQ2SEQ, *data, "module.beam_size=2", env=ONE_THREAD)
    (run,) = run_dirs(tmp_path)
    assert "beam_size=2" in (run / "test_bleu.txt").read_text()  # the test split cut off the TSV, beam 2
    assert "run_name: pairs-seq2seq_small" in (run / "config.yaml").read_text()

    ckpt = f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}"
    tests = [f"data.test_src=[{a[0]},{b[0]}]", f"data.test_tgt=[{a[1]},{b[1]}]", "beam_size=[1,2]"]
    out = run_script("eval.py", ckpt, *tests, env=ONE_THREAD)
    (scores_dir,) = run_dirs(tmp_path, "eval")
    rows = json.loads((scores_dir / "scores.json").read_text())["scores"]
    assert [(r["set"], r["beam_size"], r["pairs"]) for r in rows] == [
        ("a", 1, 7),
        ("a", 2, 7),
        ("b", 1, 5),
        ("b", 2, 5),
    ]
    for row, (_, tgt) in zip(rows, (a, a, b, b)):
        hyps = (scores_dir / row["hypotheses"]).read_text(encoding="utf-8").split("\n")[:-1]
        refs = open(tgt, encoding="utf-8").read().split("\n")[:-1]
        assert len(hyps) == len(refs) and row["hypotheses"].endswith(("greedy.txt", "beam2.txt"))
        assert row["bleu"] == pytest.approx(corpus_bleu(hyps, refs)[0].score)
        assert row["chrf"] == pytest.approx(corpus_chrf(hyps, refs)[0].score)
    assert "nrefs:1|case:mixed|eff:no|tok:13a" in out.output and "nc:6|nw:0" in out.output  # signatures printed


@pytest.mark.slow
def test_large_corpus_bench_smoke(tmp_path):
    import os
    import sys

    cmd = [sys.executable, str(ROOT / "bench" / "large_corpus.py"), "--smoke", "--workdir", str(tmp_path)]
    proc = zygote.run(cmd, env=dict(os.environ), cwd=ROOT, tmp=tmp_path / "procs", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["corpus_bytes"] >= 2_000_000 and result["dtype"] == "uint16"
    assert result["tokens"]["train"] + result["tokens"]["val"] == len((tmp_path / "corpus.txt").read_text("utf-8"))
    assert result["train"]["peak_rss_mb"] > 0 and "| train |" in proc.stdout
