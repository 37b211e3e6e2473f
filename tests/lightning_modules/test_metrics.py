"""Corpus chrF (and BLEU) as eval.py reports them."""

from __future__ import annotations

import pytest

from lightning_modules.metrics import corpus_bleu, corpus_chrf


def test_chrf_is_a_corpus_score_with_its_signature():
    refs = ["le chat est sur le tapis.", "il pleut."]
    perfect, signature = corpus_chrf(refs, refs)
    assert perfect.score == pytest.approx(100.0) and signature.startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0")
    assert corpus_chrf(["xyz qqq.", "vvv."], refs)[0].score < 10
    partial = corpus_chrf(["le chat est sur la table.", "il pleut."], refs)[0].score
    assert 50 < partial < 100
    # a corpus score, not the mean of sentence scores
    sentences = [corpus_chrf([h], [r])[0].score for h, r in zip(["le chat est sur la table.", "il pleut."], refs)]
    assert partial != pytest.approx(sum(sentences) / 2)


def test_bleu_signature_is_sacrebleus_default():
    score, signature = corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert score.score == pytest.approx(100.0) and "tok:13a|smooth:exp" in signature
