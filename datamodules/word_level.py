"""Word- and character-level vocabularies learnt from training text, as Hugging Face `tokenizers` JSON.

level="word" splits text into words, `split` choosing how:
- "whitespace": HF's `Whitespace` pre-tokenizer, runs of word characters and runs of punctuation
  (hkproj's tutorial: `WordLevel` + `Whitespace`); "don't" is "don ' t";
- "basic_english": torchtext's `basic_english` (the PyTorch language-modeling tutorial): lower-cased,
  ' . , ( ) ! ? split off as tokens, " dropped, ; : and <br /> turned into spaces, split on whitespace.
level="char": one token per character (Unicode code point, ajhalthor's `list(sentence)`).

The vocabulary is the special tokens first, in the order given (so two vocabularies learnt with the same
specials share their ids: separate source and target vocabularies decode alike), then every token seen at least
`min_frequency` times, most frequent first (at most `max_size` in all). Anything else encodes as `unk`; a
special token written in the text (WikiText's "<unk>") encodes as itself. Decoding joins words with spaces and
characters with nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from errors import ConfigError

LEVELS = ("word", "char")
WORD_SPLITS = ("whitespace", "basic_english")
UNK = "<unk>"


def check_settings(level: str, split: str, min_frequency: int, max_size: int | None) -> None:
    """The settings of a word / char vocabulary, each error naming its data.<field>."""
    if level not in LEVELS:
        raise ValueError(f"a vocabulary's level must be one of {LEVELS}, got {level!r}")
    if split not in WORD_SPLITS:
        raise ConfigError(f"data.word_split={split!r} is unknown; choose one of {WORD_SPLITS}")
    if not isinstance(min_frequency, int) or isinstance(min_frequency, bool) or min_frequency < 1:
        raise ConfigError(f"data.min_frequency must be a positive integer, got {min_frequency!r}")
    if max_size is not None and (not isinstance(max_size, int) or isinstance(max_size, bool) or max_size <= 0):
        raise ConfigError(f"data.vocab_size must be a positive integer or null (no limit), got {max_size!r}")


def _pipeline(tok, level: str, split: str, lowercase: bool) -> None:
    """Set the normalizer, pre-tokenizer and decoder of tok for a level and split."""
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers

    steps = []
    if lowercase or (level == "word" and split == "basic_english"):
        steps.append(normalizers.Lowercase())
    if level == "char":
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tok.decoder = decoders.Fuse()
    elif split == "basic_english":  # torchtext.data.utils._basic_english_normalize
        steps += [normalizers.Replace('"', ""), normalizers.Replace("<br />", " ")]
        steps.append(normalizers.Replace(Regex("[;:]"), " "))
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[',.()!?]"), behavior="isolated")]
        )
    else:
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if steps:
        tok.normalizer = normalizers.Sequence(steps)


def learn(
    texts: Iterable[str],
    *,
    level: str = "word",
    split: str = "whitespace",
    lowercase: bool = False,
    min_frequency: int = 1,
    max_size: int | None = None,
    specials: tuple[str, ...] = (UNK,),
    unk: str = UNK,
) -> str:
    """The JSON of a WordLevel tokenizer whose vocabulary is learnt from texts (see the module docstring)."""
    from tokenizers import Tokenizer, models, trainers

    check_settings(level, split, min_frequency, max_size)
    if unk not in specials:
        raise ValueError(f"the unknown token {unk!r} must be one of the special tokens {specials}")
    counter = Tokenizer(models.WordLevel(unk_token=unk))
    _pipeline(counter, level, split, lowercase)
    counter.add_special_tokens(list(specials))  # a special written in the text is one token, not "<", "unk", ">"
    # Specials are left out of the count (HF's trainer would give a special that occurs in the text a second id).
    trainer = trainers.WordLevelTrainer(vocab_size=1 << 31, min_frequency=min_frequency, show_progress=False)
    counter.train_from_iterator(texts, trainer)
    learnt = sorted(counter.get_vocab().items(), key=lambda kv: kv[1])  # the trainer's order: most frequent first
    words = [w for w, _ in learnt if w not in specials]
    if max_size is not None:
        words = words[: max(0, max_size - len(specials))]
    vocab = {w: i for i, w in enumerate([*specials, *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    _pipeline(tok, level, split, lowercase)
    tok.add_special_tokens(list(specials))
    return tok.to_str()
