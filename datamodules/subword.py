"""Tokenizers for translation: one joint vocabulary with pad / BOS / EOS ids, saved with the checkpoint.

- `BPETokenizer`: a Hugging Face `tokenizers` byte-level BPE trained on the training split only.
  Byte-level means no unknown tokens and an exact round trip: decode(encode(s)) == s.
- `GPT2PairTokenizer`: tiktoken's GPT-2 BPE, with its <|endoftext|> as BOS and EOS and one extra pad id.

Both rebuild from `state_dict()` alone (the BPE's whole JSON definition travels in it).
"""

from __future__ import annotations

from collections.abc import Iterable

from datamodules.text_tokenizers import TiktokenTokenizer, rebuild

PAD, BOS, EOS = "<pad>", "<s>", "</s>"


class BPETokenizer:
    kind = "hf_bpe"

    def __init__(self, json: str):
        """json: the tokenizer's whole definition, as Hugging Face `tokenizers` serialises it."""
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_str(json)
        self.pad_id, self.bos_id, self.eos_id = (self.tok.token_to_id(t) for t in (PAD, BOS, EOS))
        if None in (self.pad_id, self.bos_id, self.eos_id):
            raise ValueError(f"tokenizer JSON lacks one of the special tokens {PAD}, {BOS}, {EOS}")
        self.vocab_size = self.tok.get_vocab_size()

    @classmethod
    def train(cls, lines: Iterable[str], vocab_size: int, *, min_frequency: int = 2) -> BPETokenizer:
        """Learn a byte-level BPE of at most vocab_size tokens (special tokens included) from lines."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[PAD, BOS, EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(lines, trainer)
        return cls(tok.to_str())

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        # add_prefix_space puts a space before the first word; drop it again.
        text = self.tok.decode(ids, skip_special_tokens=True)
        return text[1:] if text.startswith(" ") else text

    def state_dict(self) -> dict:
        return {"kind": self.kind, "json": self.tok.to_str()}


class GPT2PairTokenizer:
    """tiktoken's GPT-2 BPE: <|endoftext|> is BOS and EOS, and the id after the vocabulary pads."""

    kind = "tiktoken_pair"

    def __init__(self, encoding: str = "gpt2"):
        self.base = TiktokenTokenizer(encoding)
        self.encoding = encoding
        self.bos_id = self.eos_id = self.base.eot
        self.pad_id = self.base.vocab_size
        self.vocab_size = self.base.vocab_size + 1

    def encode(self, text: str) -> list[int]:
        return self.base.encode(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.base.enc.encode_ordinary_batch(texts)

    def decode(self, ids: list[int]) -> str:
        return self.base.decode([i for i in ids if i < self.base.eot])

    def state_dict(self) -> dict:
        return {"kind": self.kind, "encoding": self.encoding}


PairTokenizer = BPETokenizer | GPT2PairTokenizer


def build_pair_tokenizer(state: dict) -> PairTokenizer:
    """A translation tokenizer from its state_dict() (as stored in a checkpoint)."""
    return rebuild(state, (BPETokenizer, GPT2PairTokenizer), "translation tokenizer")
