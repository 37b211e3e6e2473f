"""What train.py logs of a model's vocabularies: one joint size, or a seq2seq's separate source and target sizes."""

from __future__ import annotations

from models.gpt import GPTConfig
from models.seq2seq import Seq2SeqConfig
from training.run import vocabularies


def test_one_joint_vocabulary():
    assert vocabularies(GPTConfig(vocab_size=50257)) == "vocabulary 50,257"
    assert vocabularies(Seq2SeqConfig(vocab_size=8000)) == "vocabulary 8,000"


def test_separate_source_and_target_vocabularies():
    cfg = Seq2SeqConfig(vocab_size=6191, src_vocab_size=7853, tgt_vocab_size=6191, tie_embeddings=False)
    assert vocabularies(cfg) == "source vocabulary 7,853, target vocabulary 6,191"
