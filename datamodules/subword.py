"""Tokenizers for translation, with pad / BOS / EOS ids, saved with the checkpoint.

A translation tokenizer encodes sources (`encode`, `encode_batch`) and decodes targets (`decode`); `sides()`
gives its source and target tokenizers (the same one for a joint vocabulary).
- `BPETokenizer`: a Hugging Face `tokenizers` byte-level BPE trained on the training split only.
  Byte-level means no unknown tokens and an exact round trip: decode(encode(s)) == s.
- `GPT2PairTokenizer`: tiktoken's GPT-2 BPE, with its <|endoftext|> as BOS and EOS and one extra pad id.
- `HFPairTokenizer`: any `tokenizers` JSON with the three special tokens: the word- and character-level
  vocabularies of datamodules/word_level.py (with <unk> after them).
- `SeparateTokenizers`: one of the above per side (separate source and target vocabularies, the same
  pad / BOS / EOS ids on both sides so that decoding works unchanged).

All rebuild from `state_dict()` alone (a `tokenizers` JSON definition travels whole in it).
"""

from __future__ import annotations

from collections.abc import Iterable

from datamodules.text_tokenizers import TiktokenTokenizer, rebuild
from errors import ConfigError

PAD, BOS, EOS = "<pad>", "<s>", "</s>"


class HFPairTokenizer:
    """A Hugging Face `tokenizers` definition holding <pad>, <s> and </s>; decoding drops every special token."""

    kind = "hf"

    def __init__(self, json: str):
        """json: the tokenizer's whole definition, as Hugging Face `tokenizers` serialises it."""
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_str(json)
        self.pad_id, self.bos_id, self.eos_id = (self.tok.token_to_id(t) for t in (PAD, BOS, EOS))
        if None in (self.pad_id, self.bos_id, self.eos_id):
            raise ConfigError(f"tokenizer JSON lacks one of the special tokens {PAD}, {BOS}, {EOS}")
        self.vocab_size = self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "json": self.tok.to_str()}


class BPETokenizer(HFPairTokenizer):
    kind = "hf_bpe"

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

    def decode(self, ids: list[int]) -> str:
        # add_prefix_space puts a space before the first word; drop it again.
        text = super().decode(ids)
        return text[1:] if text.startswith(" ") else text


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


class SeparateTokenizers:
    """Separate source and target vocabularies: encodes with the source side, decodes with the target side.

    src, tgt: the two sides' state_dict()s (any joint kind above); their pad / BOS / EOS ids must agree."""

    kind = "separate"

    def __init__(self, src: dict, tgt: dict):
        self.src, self.tgt = build_joint_tokenizer(src), build_joint_tokenizer(tgt)
        ids = [(t.pad_id, t.bos_id, t.eos_id) for t in (self.src, self.tgt)]
        if ids[0] != ids[1]:
            raise ConfigError(
                f"separate source and target tokenizers must share their special ids (pad, bos, eos), got "
                f"{ids[0]} and {ids[1]}"
            )
        self.pad_id, self.bos_id, self.eos_id = ids[0]
        self.src_vocab_size, self.tgt_vocab_size = self.src.vocab_size, self.tgt.vocab_size
        self.vocab_size = self.tgt_vocab_size  # the output layer's

    def encode(self, text: str) -> list[int]:
        return self.src.encode(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.src.encode_batch(texts)

    def decode(self, ids: list[int]) -> str:
        return self.tgt.decode(ids)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "src": self.src.state_dict(), "tgt": self.tgt.state_dict()}


JointTokenizer = BPETokenizer | GPT2PairTokenizer | HFPairTokenizer
PairTokenizer = JointTokenizer | SeparateTokenizers
JOINT_KINDS = (BPETokenizer, GPT2PairTokenizer, HFPairTokenizer)


def build_joint_tokenizer(state: dict) -> JointTokenizer:
    return rebuild(state, JOINT_KINDS, "translation tokenizer (one side)")


def build_pair_tokenizer(state: dict) -> PairTokenizer:
    """A translation tokenizer from its state_dict() (as stored in a checkpoint)."""
    return rebuild(state, (*JOINT_KINDS, SeparateTokenizers), "translation tokenizer")


def sides(tokenizer: PairTokenizer) -> tuple[JointTokenizer, JointTokenizer]:
    """The tokenizers of the source and of the target side."""
    if isinstance(tokenizer, SeparateTokenizers):
        return tokenizer.src, tokenizer.tgt
    return tokenizer, tokenizer
