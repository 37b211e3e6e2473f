"""Word- and character-level vocabularies: for the GPT (data.tokenizer=word) and for translation (word / char,
joint or separate source and target vocabularies), and batches of at most max_sentences pairs."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from datamodules.batching import TokenBudgetBatchSampler
from datamodules.subword import BOS, EOS, PAD, HFPairTokenizer, SeparateTokenizers, build_pair_tokenizer, sides
from datamodules.text import TextDataModule
from datamodules.text_tokenizers import WordTokenizer, build_tokenizer
from datamodules.translation import ParallelCorpusDataModule
from datamodules.windows import load_tokens
from datamodules.word_level import UNK, learn
from tests.conftest import parallel_datamodule
from tests.datamodules.test_translation import DE, EN, corpus

PAIR_SPECIALS = (PAD, BOS, EOS, UNK)


def vocab(spec: str) -> dict[str, int]:
    return json.loads(spec)["model"]["vocab"]


# ----------------------------------------------------------------------------- learning a vocabulary


def test_specials_come_first_then_words_by_frequency_and_rare_words_are_unk():
    spec = learn(["b b b a a c c c c", "d <unk> e e"], min_frequency=2, specials=PAIR_SPECIALS)
    assert vocab(spec) == {PAD: 0, BOS: 1, EOS: 2, UNK: 3, "c": 4, "b": 5, "a": 6, "e": 7}
    tok = HFPairTokenizer(spec)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.vocab_size) == (0, 1, 2, 8)
    assert tok.encode("c d <unk> zebra a") == [4, 3, 3, 3, 6]  # d is rare, <unk> written in the text is <unk>
    assert tok.decode([1, 4, 3, 6, 2, 0]) == "c a"  # specials (<unk> too) are dropped from translations


def test_max_size_keeps_the_most_frequent_words():
    spec = learn(["a a a b b c"], max_size=3)
    assert vocab(spec) == {UNK: 0, "a": 1, "b": 2}


def test_whitespace_split_is_words_and_runs_of_punctuation():
    tok = WordTokenizer(learn(["A man's hat, (red)!"]))
    assert [tok.tok.id_to_token(i) for i in tok.encode("A man's hat, (red)!")] == [
        "A", "man", "'", "s", "hat", ",", "(", "red", ")!",
    ]  # fmt: skip
    assert tok.decode(tok.encode("A man's hat")) == "A man ' s hat"


def torchtext_basic_english(line: str) -> list[str]:
    """torchtext.data.utils._basic_english_normalize, copied (torchtext is not installed)."""
    patterns = [r"\'", r"\"", r"\.", r"<br \/>", r",", r"\(", r"\)", r"\!", r"\?", r"\;", r"\:", r"\s+"]
    replacements = [" '  ", "", " . ", " ", " , ", " ( ", " ) ", " ! ", " ? ", " ", " ", " "]
    line = line.lower()
    for pattern, replacement in zip(patterns, replacements):
        line = re.sub(pattern, replacement, line)
    return line.split()


BASIC = [
    'The <unk> said: "Don\'t!" (yes), fine.<br />OK?',
    " = Valkyria Chronicles III = \n",
    "Senjō no Valkyria 3 : <unk> Chronicles ( Japanese : 戦場のヴァルキュリア3 , lit",
    "It's 1.5 km;  well...really?!",
]


@pytest.mark.parametrize("line", BASIC)
def test_basic_english_tokenizes_as_torchtext(line):
    tok = WordTokenizer(learn(BASIC, split="basic_english"))
    words = [tok.tok.id_to_token(i) for i in tok.encode(line)]
    assert words == torchtext_basic_english(line)


def test_characters_cover_any_script_and_unseen_ones_are_unk():
    tok = HFPairTokenizer(learn(["ನಮಸ್ಕಾರ ಕನ್ನಡ", "hello"], level="char", specials=PAIR_SPECIALS))
    assert tok.vocab_size == 4 + len(set("ನಮಸ್ಕಾರ ಕನ್ನಡhello"))
    ids = tok.encode("ಕನ್ನಡ hello")
    assert len(ids) == len("ಕನ್ನಡ hello") and tok.decode(ids) == "ಕನ್ನಡ hello"  # code points, spaces kept
    assert tok.encode("hZ")[1] == 3 and tok.decode(tok.encode("hZe")) == "he"
    lower = HFPairTokenizer(learn(["Hello"], level="char", lowercase=True, specials=PAIR_SPECIALS))
    assert lower.decode(lower.encode("HELLO")) == "hello"


# ----------------------------------------------------------------------------- separate vocabularies


def test_separate_tokenizers_encode_sources_and_decode_targets():
    src = HFPairTokenizer(learn(DE, specials=PAIR_SPECIALS))
    tgt = HFPairTokenizer(learn(EN, level="char", specials=PAIR_SPECIALS))
    tok = SeparateTokenizers(src.state_dict(), tgt.state_dict())
    assert (tok.src_vocab_size, tok.tgt_vocab_size, tok.vocab_size) == (src.vocab_size, tgt.vocab_size, tgt.vocab_size)
    assert tok.encode("Ein Mann") == src.encode("Ein Mann") and tok.encode("Ein Mann") != tgt.encode("Ein Mann")
    assert tok.decode(tgt.encode("A man")) == "A man"
    rebuilt = build_pair_tokenizer(json.loads(json.dumps(tok.state_dict())))  # as a checkpoint stores it
    assert isinstance(rebuilt, SeparateTokenizers) and rebuilt.state_dict() == tok.state_dict()
    assert [s.encode("Hund") for s in sides(rebuilt)] == [src.encode("Hund"), tgt.encode("Hund")]


def test_separate_tokenizers_must_share_the_special_ids():
    a = HFPairTokenizer(learn(DE, specials=PAIR_SPECIALS))
    b = HFPairTokenizer(learn(EN, specials=(UNK, PAD, BOS, EOS)))
    with pytest.raises(
        ValueError, match=r"must share their special ids \(pad, bos, eos\), got \(0, 1, 2\) and \(1, 2, 3\)"
    ):
        SeparateTokenizers(a.state_dict(), b.state_dict())


# ----------------------------------------------------------------------------- translation data


@pytest.mark.parametrize("level", ["word", "char"])
def test_a_parallel_corpus_gets_one_vocabulary_per_side_learnt_on_train(tmp_path, level):
    root = corpus(tmp_path / "c", {"train": (DE, EN), "val": (["Ein Quokka."], ["A quokka."])})
    kw = dict(tokenizer=level, shared_vocab=False, min_frequency=1, test=None, max_len=64, max_tokens=128)
    dm = parallel_datamodule(root, tmp_path / "cache", **kw)
    src, tgt = sides(dm.tokenizer)
    assert dm.src_vocab_size == src.vocab_size and dm.tgt_vocab_size == tgt.vocab_size == dm.vocab_size
    german = "Mann" if level == "word" else "ä"
    assert german in src.tok.get_vocab() and german not in tgt.tok.get_vocab()
    for split in ("train", "val"):  # each side encoded with its own vocabulary
        data = dm.splits[split]
        assert data.src_ids == [src.encode(s) for s in data.src_text]
        assert data.tgt_ids == [tgt.encode(t) for t in data.tgt_text]
    unk = src.tok.token_to_id(UNK)
    assert unk in dm.splits["val"].src_ids[0]  # "Quokka" (and its "Q") is not in the training text
    again = parallel_datamodule(
        root, tmp_path / "cache", tokenizer=level, shared_vocab=False, min_frequency=1, test=None
    )
    assert again.tokenizer.state_dict() == dm.tokenizer.state_dict()
    assert len(list((tmp_path / "cache" / "translation").iterdir())) == 1  # learnt once, cached


def test_a_joint_word_vocabulary_and_lower_case(tmp_path):
    root = corpus(tmp_path / "c", {"train": (DE, EN), "val": (DE[:2], EN[:2])})
    dm = parallel_datamodule(root, tmp_path / "cache", tokenizer="word", lowercase=True, min_frequency=1, test=None)
    assert isinstance(dm.tokenizer, HFPairTokenizer) and dm.src_vocab_size is None
    assert {"ein", "a", "mann", "man"} <= set(
        dm.tokenizer.tok.get_vocab()
    ) and "Ein" not in dm.tokenizer.tok.get_vocab()
    assert dm.tokenizer.decode(dm.splits["val"].tgt_ids[0]) == "a man rides a bike ."


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(tokenizer="gpt2", shared_vocab=False), "data.tokenizer=gpt2 is one vocabulary"),
        (dict(tokenizer="bpe", vocab_size=None), "data.vocab_size must be a positive integer"),
        (dict(tokenizer="word", word_split="spacy"), "data.word_split='spacy' is unknown"),
        (dict(tokenizer="char", min_frequency=0), "data.min_frequency must be a positive integer"),
        (dict(max_sentences=0), "data.max_sentences must be a positive integer or null"),
        (dict(eval_limit=0), "data.eval_limit must be a positive integer or null"),
    ],
)
def test_bad_vocabulary_settings_fail_on_construction(tmp_path, kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ParallelCorpusDataModule(data_dir=str(tmp_path), **kw)


def test_eval_limit_keeps_the_first_val_and_test_pairs_and_every_training_pair(tmp_path):
    root = corpus(tmp_path / "c", {"train": (DE, EN), "val": (DE, EN), "test": (DE, EN)})
    dm = parallel_datamodule(root, tmp_path / "cache", tokenizer="word", min_frequency=1, eval_limit=2)
    dm.setup("test")
    assert [len(dm.splits[s].src_text) for s in ("train", "val", "test")] == [len(DE), 2, 2]
    assert dm.splits["val"].tgt_text == EN[:2]
    both = parallel_datamodule(root, tmp_path / "cache", tokenizer="word", limit=3, eval_limit=2)
    both.setup("test")
    assert [len(both.splits[s].src_text) for s in ("train", "val", "test")] == [3, 2, 2]


def test_batches_hold_at_most_max_sentences_pairs():
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(2, 20, 300), rng.integers(2, 20, 300)
    batches = list(TokenBudgetBatchSampler(src, tgt, 4096, shuffle=True, max_sentences=8))
    assert sorted(i for b in batches for i in b) == list(range(300))
    assert max(map(len, batches)) == 8 and len(batches) == 300 // 8 + 1
    tight = list(TokenBudgetBatchSampler(src, tgt, 60, shuffle=False, max_sentences=8))  # the budget binds first
    assert all(len(b) * max(src[b].max(), tgt[b].max()) <= 60 for b in tight) and min(map(len, tight)) < 8


# ----------------------------------------------------------------------------- language-model data


def test_a_gpt_corpus_in_words_learnt_on_the_training_split(tmp_path):
    train_text, val_text = "the cat sat on the mat . the dog sat .\n" * 50, "a zebra sat on the cat .\n" * 5
    (tmp_path / "train.txt").write_text(train_text, encoding="utf-8")
    (tmp_path / "val.txt").write_text(val_text, encoding="utf-8")
    kw = dict(train=str(tmp_path / "train.txt"), val=str(tmp_path / "val.txt"), tokenizer="word", batch_size=2)
    kw |= dict(cache_dir=str(tmp_path / "cache"), block_size=4)
    dm = TextDataModule(**kw)
    dm.prepare_data()
    dm.setup("fit")
    tok = dm.tokenizer
    assert isinstance(tok, WordTokenizer) and tok.vocab_size == 1 + len(set("the cat sat on mat . dog".split()))
    train, val = (np.asarray(t).astype(np.int64) for t in (dm.train_tokens, dm.val_tokens))
    assert tok.decode(train[:7]) == "the cat sat on the mat ."
    assert tok.decode(val[-7:]) == "<unk> <unk> sat on the cat ."  # a and zebra appear in the val text only
    assert (len(train), len(val)) == (len(train_text.split()), len(val_text.split()))
    meta = json.loads((dm.tokens_path("train").parent / "meta.json").read_text())
    assert meta["dtype"] == "uint16" and build_tokenizer(meta["tokenizer"]).state_dict() == tok.state_dict()
    assert len(list((tmp_path / "cache" / "text").glob("words-*.json"))) == 1
    again = TextDataModule(**kw)
    again.setup("fit")  # the cached vocabulary and tokens
    assert again.tokenizer.state_dict() == tok.state_dict() and np.array_equal(
        load_tokens(again.tokens_path("val")), val
    )
