"""What train.py logs of a model's vocabularies: one joint size, or a seq2seq's separate source and target sizes."""

from __future__ import annotations

import dataclasses

import pytest

from models.gpt import GPTConfig
from models.seq2seq import Seq2SeqConfig
from training.run import vocabularies, with_vocabularies


def test_one_joint_vocabulary():
    assert vocabularies(GPTConfig(vocab_size=50257)) == "vocabulary 50,257"
    assert vocabularies(Seq2SeqConfig(vocab_size=8000)) == "vocabulary 8,000"


def test_separate_source_and_target_vocabularies():
    cfg = Seq2SeqConfig(vocab_size=6191, src_vocab_size=7853, tgt_vocab_size=6191, tie_embeddings=False)
    assert vocabularies(cfg) == "source vocabulary 7,853, target vocabulary 6,191"


class Data:
    """What train.py reads off a set-up DataModule."""

    def __init__(self, vocab_size: int, **separate):
        self.vocab_size = vocab_size
        self.__dict__.update(separate)


def test_the_data_gives_a_new_validated_config_and_the_first_stays_as_it_was():
    cfg = GPTConfig(vocab_size=50257, block_size=8, n_layer=1, n_head=2, n_embd=8)
    final = with_vocabularies(cfg, Data(65))
    assert (final.vocab_size, cfg.vocab_size) == (65, 50257) and final.n_embd == 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        final.vocab_size = 66
    with pytest.raises(ValueError, match="model.vocab_size must be a positive integer, got 0"):
        with_vocabularies(cfg, Data(0))  # dataclasses.replace runs the checks again
    joint = Seq2SeqConfig(vocab_size=100)
    with pytest.raises(ValueError, match="model.tie_embeddings=true needs one joint vocabulary"):
        with_vocabularies(joint, Data(100, src_vocab_size=80, tgt_vocab_size=90))
    untied = with_vocabularies(dataclasses.replace(joint, tie_embeddings=False), Data(90, src_vocab_size=80,
                                                                                     tgt_vocab_size=90))  # fmt: skip
    assert (untied.src_vocab, untied.tgt_vocab) == (80, 90)
