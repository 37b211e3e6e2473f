"""Scores of generated text: word accuracy (share of words found in the training text), corpus BLEU and chrF."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
# Word accuracy's vocabulary comes from at most this much of the training text (corpora may be of any size).
VOCAB_TEXT_TOKENS = 2_000_000  # all of Tiny Shakespeare (1M characters); bounded memory for any corpus


def words(text: str) -> list[str]:
    """Lower-cased words: runs of letters, with inner apostrophes ("o'er"); punctuation and digits split."""
    return [w.lower() for w in WORD.findall(text)]


def vocabulary(text: str) -> set[str]:
    return set(words(text))


def word_accuracy(generated: Iterable[str], vocab: set[str]) -> float | None:
    """Share of generated words found in vocab (None when there are no words)."""
    generated = list(generated)
    if not generated:
        return None
    return sum(w in vocab for w in generated) / len(generated)


def complete_words(text: str) -> list[str]:
    """words(text), without a last word that may have been cut off (text does not end after it)."""
    found = words(text)
    return found[:-1] if found and text[-1].isalpha() else found


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def corpus_bleu(hypotheses: list[str], references: list[str]):
    """sacreBLEU over the whole corpus (not a mean of sentence scores): (BLEUScore, signature string).

    13a tokenization of detokenized text, cased, exponential smoothing: the numbers papers report.
    """
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    score = bleu.corpus_score(hypotheses, [references])
    return score, str(bleu.get_signature())


def corpus_chrf(hypotheses: list[str], references: list[str]):
    """sacreBLEU's corpus chrF (character 6-grams, beta 2) on detokenized text: (CHRFScore, signature string)."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    score = chrf.corpus_score(hypotheses, [references])
    return score, str(chrf.get_signature())
