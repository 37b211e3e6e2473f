"""Small corpora the tests generate, laid out like the real ones, so that the suite runs without ../shared.

`write_corpora(root)` writes root/tinyshakespeare.txt (a Shakespeare-like play, ~60k characters) and
root/multi30k/{train,val,test2016}.{de,en} (template German-English pairs). Deterministic: the same bytes on
every machine. The real corpora (`make data`) are only needed by the tests that check their exact numbers.
"""

from __future__ import annotations

import random
from pathlib import Path

from datamodules.files import atomic_write

SPEAKERS = ("ROMEO", "JULIET", "HAMLET", "KING HENRY", "QUEEN", "NURSE", "FRIAR LAURENCE", "MERCUTIO")
WORDS = (
    "the and to of my that in you is not with me it be his your for this but have thou thy as so will what "
    "her him all by shall do no love good lord king now sir come well would let more then how night death "
    "heart our upon should sweet father hath heaven fair speak blood make tell day life know mine eyes art 'tis o'er"
).split()

# (German, English) parts of the template sentences: subject, verb, place.
SUBJECTS = [
    ("Ein Mann", "A man"),
    ("Eine Frau", "A woman"),
    ("Ein Kind", "A child"),
    ("Ein Hund", "A dog"),
    ("Ein Mädchen", "A girl"),
    ("Ein Junge", "A boy"),
    ("Eine Katze", "A cat"),
    ("Ein Arbeiter", "A worker"),
]
VERBS = [
    ("spielt", "plays"),
    ("läuft", "runs"),
    ("sitzt", "sits"),
    ("steht", "stands"),
    ("schläft", "sleeps"),
    ("wartet", "waits"),
    ("tanzt", "dances"),
    ("singt", "sings"),
]
PLACES = [("im Park", "in the park"), ("auf der Straße", "on the street"), ("im Schnee", "in the snow"),
          ("am Strand", "on the beach"), ("im Wasser", "in the water"), ("vor dem Haus", "in front of the house"),
          ("auf dem Feld", "on the field"), ("in der Küche", "in the kitchen"), ("im Garten", "in the garden"),
          ("auf einer Bank", "on a bench")]  # fmt: skip
SPLITS = {"train": 340, "val": 100, "test2016": 200}  # pairs per split (train.py tests use data.limit=200)


def play(n_chars: int = 60_000, seed: int = 0) -> str:
    """Speeches of a few words per line, each under its speaker's name, as in Tiny Shakespeare."""
    rng = random.Random(seed)
    parts, size = [], 0
    while size < n_chars:
        lines = [" ".join(rng.choices(WORDS, k=rng.randint(4, 9))).capitalize() + rng.choice(",.;!?") for _ in
                 range(rng.randint(1, 4))]  # fmt: skip
        speech = f"{rng.choice(SPEAKERS)}:\n" + "\n".join(lines) + "\n\n"
        parts.append(speech)
        size += len(speech)
    return "".join(parts)


def pairs(seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """Template translation pairs, shuffled and cut into train / val / test2016."""
    every = [(f"{s[0]} {v[0]} {p[0]}.", f"{s[1]} {v[1]} {p[1]}.") for s in SUBJECTS for v in VERBS for p in PLACES]
    random.Random(seed).shuffle(every)
    out, start = {}, 0
    for split, n in SPLITS.items():
        out[split] = every[start : start + n]
        start += n
    return out


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_corpora(root: Path) -> Path:
    _write_if_changed(root / "tinyshakespeare.txt", play())
    for split, split_pairs in pairs().items():
        for side, lang in enumerate(("de", "en")):
            _write_if_changed(root / "multi30k" / f"{split}.{lang}", "".join(p[side] + "\n" for p in split_pairs))
    return root
