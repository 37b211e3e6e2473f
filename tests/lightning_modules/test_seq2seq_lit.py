"""Seq2SeqLitModule: loss, corpus BLEU on detokenized text, test hypotheses, checkpoints, and the CPU
quality bar (a tiny model memorises a few hundred Multi30k pairs: BLEU > 90 on them)."""

from __future__ import annotations

import math
from pathlib import Path
from unittest import mock

import lightning as L
import pytest
import sacrebleu
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import WandbLogger

from datamodules.parallel_text import read_pairs
from datamodules.translation import ParallelCorpusDataModule
from lightning_modules.metrics import corpus_bleu
from lightning_modules.seq2seq import Seq2SeqLitModule
from models.seq2seq import Seq2SeqConfig
from tests.conftest import parallel_datamodule
from training.checkpoint import load_module


def first_short_pairs(root: Path) -> list[tuple[str, str]]:
    """The first 300 training pairs of at most 10 words a side."""
    src, tgt = read_pairs(root / "train.de", root / "train.en")
    return [(s, t) for s, t in zip(src, tgt) if len(s.split()) <= 10 and len(t.split()) <= 10][:300]


def write_corpus(root: Path, pairs: list[tuple[str, str]]) -> Path:
    """train = the pairs; val = the first 40 of them; test = the 30 after those."""
    parts = {"train": pairs, "val": pairs[:40], "test": pairs[40:70]}
    for split, split_pairs in parts.items():
        (root / f"{split}.de").write_text("".join(s + "\n" for s, _ in split_pairs), encoding="utf-8")
        (root / f"{split}.en").write_text("".join(t + "\n" for _, t in split_pairs), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def short_pairs(corpora) -> list[tuple[str, str]]:
    return first_short_pairs(corpora / "multi30k")  # the generated corpus


@pytest.fixture(scope="module")
def corpus(short_pairs, tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), short_pairs)


def datamodule(corpus: Path, tmp_path: Path, **kw) -> ParallelCorpusDataModule:
    return parallel_datamodule(corpus, tmp_path / "cache", **{"vocab_size": 1000, "max_tokens": 1024, **kw})


def lit(dm, optim: dict | None = None, **kw) -> Seq2SeqLitModule:
    torch.manual_seed(0)
    cfg = Seq2SeqConfig(
        vocab_size=dm.vocab_size, max_len=32, n_enc_layer=2, n_dec_layer=2, n_head=4, n_embd=64, d_ff=128, dropout=0.0
    )
    return Seq2SeqLitModule(cfg.to_dict(), dm.tokenizer.state_dict(), optim, **kw)


def trainer(tmp_path: Path, **kw) -> L.Trainer:
    args = dict(
        accelerator="cpu",
        default_root_dir=str(tmp_path),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return L.Trainer(**{**args, **kw})


# ----------------------------------------------------------------------------- loss


def test_loss_ignores_target_padding(corpus, tmp_path):
    dm = datamodule(corpus, tmp_path)
    module = lit(dm).eval()
    batch = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        padded = module._loss(module(batch["src"], batch["tgt_in"]), batch["tgt_out"], 0.1)
        total, tokens = 0.0, 0
        for r in range(batch["src"].size(0)):  # every pair alone, without any padding
            n_src = int(batch["src"][r].ne(dm.tokenizer.pad_id).sum())
            n_tgt = int(batch["tgt_out"][r].ne(dm.tokenizer.pad_id).sum())
            logits = module(batch["src"][r : r + 1, :n_src], batch["tgt_in"][r : r + 1, :n_tgt])
            target = batch["tgt_out"][r, :n_tgt]
            total += F.cross_entropy(logits[0], target, label_smoothing=0.1, reduction="sum").item()
            tokens += n_tgt
    assert batch["tgt_out"].eq(dm.tokenizer.pad_id).any()  # the batch really is padded
    assert padded.item() == pytest.approx(total / tokens, rel=1e-5)
    # label smoothing eps: (1 - eps) x cross-entropy + eps x the mean over the vocabulary of -log p, per real token
    with torch.no_grad():
        logits = module(batch["src"], batch["tgt_in"])
        real = batch["tgt_out"].ne(dm.tokenizer.pad_id)
        uniform = -F.log_softmax(logits.float(), -1).mean(-1)[real].mean()
        plain = module._loss(logits, batch["tgt_out"], 0.0)
    assert padded.item() == pytest.approx(0.9 * plain.item() + 0.1 * uniform.item(), rel=1e-5)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(label_smoothing=1.0), r"module\.label_smoothing must be in \[0, 1\)"),
        (dict(beam_size=0), r"module\.beam_size must be a positive integer"),
        (dict(val_beam_size=2.5), r"module\.val_beam_size must be a positive integer"),
    ],
)
def test_bad_module_options(corpus, tmp_path, kw, message):
    dm = datamodule(corpus, tmp_path)
    with pytest.raises(ValueError, match=message):
        lit(dm, **kw)


def test_vocab_size_must_match_the_tokenizer(corpus, tmp_path):
    dm = datamodule(corpus, tmp_path)
    cfg = Seq2SeqConfig(vocab_size=dm.vocab_size + 1, max_len=32, n_enc_layer=1, n_dec_layer=1, n_head=2, n_embd=8)
    n = dm.vocab_size
    with pytest.raises(ValueError, match=rf"model\.vocab_size={n + 1} does not match the tokenizer's {n}"):
        Seq2SeqLitModule(cfg.to_dict(), dm.tokenizer.state_dict())


# ----------------------------------------------------------------------------- BLEU


def test_bleu_is_corpus_level_sacrebleu():
    hyps = ["The cat sat on the mat.", "A dog.", "Two men are playing football in a park."]
    refs = ["The cat sat on the mat.", "A brown dog runs.", "Two men play soccer in the park."]
    score, signature = corpus_bleu(hyps, refs)
    assert score.score == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    sentence_mean = sum(sacrebleu.sentence_bleu(h, [r]).score for h, r in zip(hyps, refs)) / 3
    assert abs(score.score - sentence_mean) > 1.0  # not an average of sentence scores
    assert signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    # sacreBLEU applies its own 13a tokenization to the detokenized strings it is given; case counts.
    assert corpus_bleu(["The cat sat on the mat ."], ["The cat sat on the mat."])[0].score == pytest.approx(100)
    assert corpus_bleu(["the cat sat on the mat."], ["The cat sat on the mat."])[0].score < 100  # cased


def oracle(module: Seq2SeqLitModule, dm, transform=lambda s: s):
    """Make the module 'translate' every source into its reference (through the tokenizer)."""
    refs = {}
    for split in dm.splits.values():
        refs.update(dict(zip(split.src_text, split.tgt_text)))
    tok = dm.tokenizer

    def generate_ids(src, beam_size=None, **kw):
        texts = []
        for row in src.tolist():
            ids = [i for i in row if i not in (tok.pad_id, tok.eos_id)]
            texts.append(refs[tok.decode(ids)])
        return [tok.encode(transform(t)) for t in texts]

    module.generate_ids = generate_ids
    return module


def test_validation_scores_detokenized_text_and_writes_examples(corpus, tmp_path):
    dm = datamodule(corpus, tmp_path)
    module = oracle(lit(dm, num_examples=3), dm)
    metrics = trainer(tmp_path).validate(module, datamodule=dm, verbose=False)[0]
    assert metrics["val/bleu"] == pytest.approx(100.0)  # decode(encode(reference)) is the reference itself
    assert metrics["val/loss"] > 0
    text = (tmp_path / "translations.txt").read_text(encoding="utf-8")
    assert text.startswith("=== step 0: val BLEU 100.00 (nrefs:1|case:mixed")
    assert text.count("SRC: ") == 3 and text.count("HYP: ") == 3
    lower = oracle(lit(dm), dm, transform=str.lower)
    assert trainer(tmp_path).validate(lower, datamodule=dm, verbose=False)[0]["val/bleu"] < 90  # cased


def test_examples_go_to_a_wandb_table(corpus, tmp_path, monkeypatch):
    dm = datamodule(corpus, tmp_path)
    module = lit(dm)
    wandb = mock.MagicMock(spec=WandbLogger)
    monkeypatch.setattr(Seq2SeqLitModule, "loggers", property(lambda self: [wandb]))
    monkeypatch.setattr(Seq2SeqLitModule, "_run_dir", lambda self: tmp_path)
    module._write_examples([(0, "Ein Hund.", "A dog.", "A dog.")], 100.0, "sig")
    wandb.log_text.assert_called_once_with(
        key="translations",
        columns=["step", "source", "reference", "hypothesis"],
        data=[[0, "Ein Hund.", "A dog.", "A dog."]],
    )


def test_test_writes_hypotheses_in_corpus_order(corpus, tmp_path, short_pairs):
    dm = datamodule(corpus, tmp_path)
    module = oracle(lit(dm), dm)
    metrics = trainer(tmp_path).test(module, datamodule=dm, verbose=False)[0]
    assert metrics["test/bleu"] == pytest.approx(100.0)
    lines = (tmp_path / "test_hypotheses.txt").read_text(encoding="utf-8").split("\n")
    assert lines[:-1] == [t for _, t in short_pairs[40:70]] and lines[-1] == ""  # bucketing reordered, not this
    summary = (tmp_path / "test_bleu.txt").read_text(encoding="utf-8")
    assert summary.startswith("BLEU = 100.00") and "tok:13a" in summary and "beam_size=5" in summary


# ----------------------------------------------------------------------------- translate and checkpoints


def test_translate_keeps_empty_lines_and_truncates_long_ones(corpus, tmp_path):
    dm = datamodule(corpus, tmp_path)
    module = lit(dm)
    long = " ".join(["Hund"] * 100)
    with pytest.warns(UserWarning, match=r"1 sentence\(s\) \(first: #3\) exceed the model's maximum of 31 tokens"):
        out = module.translate(["Ein Hund.", "", long, "  "], beam_size=2)
    assert len(out) == 4 and out[1] == "" and out[3] == ""
    assert all(isinstance(t, str) for t in out)


def test_checkpoint_round_trip(corpus, tmp_path):
    dm = datamodule(corpus, tmp_path)
    module = lit(dm, dict(lr=1e-3, warmup_steps=1), val_bleu=False)
    t = trainer(tmp_path, max_steps=2, limit_val_batches=1, num_sanity_val_steps=0, enable_checkpointing=True)
    t.fit(module, datamodule=dm)
    path = tmp_path / "model.ckpt"
    t.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=False)
    assert ckpt["tformer_family"] == "seq2seq"
    assert isinstance(ckpt["hyper_parameters"]["tokenizer"]["json"], str)  # the tokenizer travels along
    loaded = load_module(path, "seq2seq")
    sentences = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen."]
    assert loaded.translate(sentences, beam_size=3) == module.eval().translate(sentences, beam_size=3)
    with pytest.raises(ValueError, match=r"holds a seq2seq model, but this needs a gpt checkpoint"):
        load_module(path, "gpt")


# ----------------------------------------------------------------------------- the CPU quality bar


@pytest.mark.slow
def test_tiny_model_reproduces_its_training_sentences(multi30k_dir, tmp_path):
    """300 pairs, 250 steps of a 0.23M-parameter model on one CPU thread (~40 s): BLEU > 90 on those pairs,
    with greedy and beam search. Exercises masks, bucketing, loss, decoding and scoring together."""
    short_pairs = first_short_pairs(multi30k_dir)
    corpus = write_corpus(tmp_path, short_pairs)
    L.seed_everything(0)
    dm = datamodule(corpus, tmp_path)
    optim = dict(lr=3e-3, min_lr=1e-4, warmup_steps=30, weight_decay=0.0, beta2=0.98, schedule="cosine")
    module = lit(dm, optim, label_smoothing=0.0, val_bleu=False)
    assert math.isclose(module.config.num_params(), 231_680, rel_tol=0.01)
    trainer(tmp_path, max_steps=250, limit_val_batches=0).fit(module, datamodule=dm)
    sources, references = [s for s, _ in short_pairs], [t for _, t in short_pairs]
    beam, _ = corpus_bleu(module.translate(sources, beam_size=4), references)
    greedy, _ = corpus_bleu(module.translate(sources, beam_size=1), references)
    print(f"tiny model on its 300 training pairs: beam-4 {beam}; greedy {greedy}")
    assert beam.score > 90, beam
    assert greedy.score > 90, greedy


# ----------------------------------------------------------------------------- model.impl=torch


@pytest.fixture(scope="module")
def copy_corpus(short_pairs, tmp_path_factory) -> Path:
    """A copy task: every split's target is its source (200 short English sentences)."""
    root = tmp_path_factory.mktemp("copy")
    lines = [t for _, t in short_pairs[:200]]
    for split, part in {"train": lines, "val": lines[:32], "test": lines[:16]}.items():
        for lang in ("de", "en"):
            (root / f"{split}.{lang}").write_text("".join(s + "\n" for s in part), encoding="utf-8")
    return root


@pytest.mark.slow
def test_impl_torch_trains_and_decodes_through_the_lightning_module(copy_corpus, tmp_path):
    """nn.Transformer (the PyTorch tutorial's post-LN, ReLU, untied biased generator, Adam) learns to copy, and
    its greedy and beam-1 decodings (no KV cache: the prefix is recomputed each step) are the same."""
    from models.decoding import Decoding, beam_search
    from models.seq2seq_torch import Seq2SeqTorch

    L.seed_everything(0)
    dm = datamodule(copy_corpus, tmp_path, vocab_size=300, max_tokens=512)
    cfg = Seq2SeqConfig(vocab_size=dm.vocab_size, max_len=32, n_enc_layer=1, n_dec_layer=1, n_head=2, n_embd=32,
                        d_ff=64, dropout=0.0, impl="torch", norm="post", activation="relu", tie_embeddings=False,
                        head_bias=True)  # fmt: skip
    optim = dict(name="adam", lr=3e-3, schedule="constant", warmup_steps=0, weight_decay=0.0, beta2=0.98)
    module = Seq2SeqLitModule(cfg.to_dict(), dm.tokenizer.state_dict(), optim, label_smoothing=0.0, val_bleu=False)
    assert isinstance(module.model, Seq2SeqTorch)
    batch = next(iter(dm.val_dataloader()))

    def val_loss() -> float:
        with torch.no_grad():
            loss = module.eval()._loss(module(batch["src"], batch["tgt_in"]), batch["tgt_out"], 0.0).item()
        module.train()
        return loss

    sentences = batch["src_text"][:8]

    def chrf() -> float:
        return sacrebleu.corpus_chrf(module.translate(sentences, beam_size=3), [sentences]).score

    before, chrf_before = val_loss(), chrf()
    trainer(tmp_path, max_steps=150, limit_val_batches=0).fit(module, datamodule=dm)
    after = val_loss()
    print(f"impl=torch copy task: val loss {before:.3f} -> {after:.3f}")
    assert after < 0.5 * before
    decoding = Decoding(bos_id=module.bos_id, eos_id=module.eos_id, pad_id=module.pad_id)
    greedy = module.generate_ids(batch["src"], beam_size=1)
    assert greedy == beam_search(module.model, batch["src"], batch["src"].eq(module.pad_id), decoding, beam_size=1)
    chrf_after = chrf()
    print(f"beam-3 copies: chrF {chrf_before:.1f} -> {chrf_after:.1f}")
    assert chrf_after > chrf_before + 20  # near copies through translate() and beam search
