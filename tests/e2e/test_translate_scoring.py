"""The Multi30k recipe at tiny size: averaged.ckpt from the run, average.py, and translate.py reference= scoring."""

from __future__ import annotations

import json

import pytest
import torch

from tests.e2e.test_translate import ONE_THREAD, TINY_SEQ2SEQ

TINY_RECIPE = [
    "experiment=translate_multi30k",
    *TINY_SEQ2SEQ,
    "trainer.max_steps=6",
    "trainer.val_check_interval=2",
    "callbacks.averaging.last_n=2",
    "module.beam_size=2",
]


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    """One tiny run of the Multi30k recipe (one thread: fastest for tiny models on a shared CPU)."""
    import os

    from tests.e2e.procs import run_train

    tmp = tmp_path_factory.mktemp("recipe")
    threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        code, output = run_train(TINY_RECIPE, tmp_path=tmp, name="recipe", timeout=600)
    finally:
        if threads is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = threads
    assert code == 0, output[-4000:]
    (run,) = sorted((tmp / "logs" / "train" / "runs").glob("*"))
    return run


def sentences(tmp_path, corpora, n: int = 12):
    """The first n val pairs of the (generated) Multi30k the recipe trained on, as an input and a reference file."""
    src, ref = tmp_path / "in.de", tmp_path / "ref.en"
    for lang, path in (("de", src), ("en", ref)):
        lines = (corpora / "multi30k" / f"val.{lang}").read_text(encoding="utf-8").splitlines()[:n]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return src, ref


@pytest.mark.slow
def test_recipe_writes_an_averaged_checkpoint_that_translate_scores(recipe_run, run_script, tmp_path, corpora):
    averaged = recipe_run / "checkpoints" / "averaged.ckpt"
    raw = torch.load(averaged, weights_only=False)
    assert raw["averaged_steps"] == [4, 6] and raw["tformer_family"] == "seq2seq"
    src, ref = sentences(tmp_path, corpora)
    hyps, report = tmp_path / "hyps.en", tmp_path / "bleu.json"
    out = run_script(
        "translate.py", f"ckpt_path={averaged}", f"input={src}", f"reference={ref}", f"output={hyps}",
        f"score_json={report}", "beam_size=4", "length_penalty=0.6", env=ONE_THREAD,
    )  # fmt: skip
    score = json.loads(report.read_text())
    lines = hyps.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 13 and lines[-1] == ""  # one hypothesis per input line
    from lightning_modules.metrics import corpus_bleu

    bleu, signature = corpus_bleu(lines[:-1], ref.read_text(encoding="utf-8").splitlines())
    assert score["bleu"] == pytest.approx(bleu.score) and score["signature"] == signature
    assert score["sentences"] == 12 and score["beam_size"] == 4 and score["length_penalty"] == 0.6
    assert score["ms_per_sentence"] == pytest.approx(1000 * score["seconds"] / 12)
    assert "nrefs:1|case:mixed|eff:no|tok:13a" in out.stdout and "ms per sentence" in out.stdout
    assert out.stdout.startswith("BLEU = ")
    # without output=, stdout carries the hypotheses only (the same ones) and the score goes to stderr
    plain = run_script(
        "translate.py", f"ckpt_path={averaged}", f"input={src}", f"reference={ref}", "beam_size=4",
        "length_penalty=0.6", env=ONE_THREAD,
    )  # fmt: skip
    assert plain.stdout == hyps.read_text(encoding="utf-8")
    assert plain.stderr.count("BLEU = ") == 1 and f"BLEU = {bleu.score:.2f}" in plain.stderr


@pytest.mark.slow
def test_average_py_of_one_checkpoint_thrice_translates_like_it(recipe_run, tmp_path, capsys):
    import average
    from training.checkpoint import load_module

    last = recipe_run / "checkpoints" / "last.ckpt"
    avg = tmp_path / "avg.ckpt"
    assert average.main([str(last), str(last), str(last), "-o", str(avg)]) == 0
    assert f"averaged 3 checkpoints into {avg}" in capsys.readouterr().out
    a, b = (torch.load(p, weights_only=False)["state_dict"] for p in (last, avg))
    assert all(torch.equal(a[k], b[k]) for k in a)
    text = ["Ein Hund läuft.", "Zwei Männer spielen Fußball."]
    translate = lambda path: load_module(path, "seq2seq").translate(text, beam_size=2)  # noqa: E731
    assert translate(avg) == translate(last)


def test_reference_errors_name_the_field(tmp_path):
    from omegaconf import OmegaConf

    from translate import read_reference

    src, ref = tmp_path / "in.de", tmp_path / "ref.en"
    src.write_text("Ein Hund.\nZwei Katzen.\n", encoding="utf-8")
    ref.write_text("A dog.\n", encoding="utf-8")

    def cfg(**kw):
        return OmegaConf.create({"text": None, "input": str(src), "reference": None, "score_json": None, **kw})

    assert read_reference(cfg(), 2) is None
    ref2 = tmp_path / "ref2.en"
    ref2.write_text("A dog.\nTwo cats.\n", encoding="utf-8")
    assert read_reference(cfg(reference=str(ref2)), 2) == ["A dog.", "Two cats."]
    with pytest.raises(ValueError, match=f"reference={ref} has 1 lines but input={src} has 2"):
        read_reference(cfg(reference=str(ref)), 2)
    with pytest.raises(FileNotFoundError, match="reference=.*nope.en does not exist"):
        read_reference(cfg(reference=str(tmp_path / "nope.en")), 2)
    with pytest.raises(ValueError, match="give input= too"):
        read_reference(cfg(input=None, text="Hallo", reference=str(ref)), 1)
    with pytest.raises(ValueError, match="give reference= too"):
        read_reference(cfg(score_json=str(tmp_path / "s.json")), 2)


def test_average_py_errors(tmp_path, capsys):
    import average

    with pytest.raises(SystemExit) as exit_:
        average.main([str(tmp_path / "a.ckpt"), "-o", str(tmp_path / "b.ckpt")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "checkpoint=" in err and "a.ckpt does not exist" in err
