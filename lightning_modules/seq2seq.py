"""The seq2seq LightningModule: label-smoothed loss, AdamW + warmup schedule, BLEU, translation files.

Metrics: train/loss (label-smoothed), val/loss (plain cross-entropy per target token, padding
ignored), val/bleu (corpus-level sacreBLEU on detokenized, cased text, greedy or beam per
`val_beam_size`), test/bleu (beam search). Files in the run directory (trainer.default_root_dir):
translations.txt (example translations after every validation, also a W&B table "translations"),
test_hypotheses.txt (one line per test pair, in corpus order) and test_bleu.txt (score + signature).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import WandbLogger
from torchmetrics import MeanMetric

from datamodules.subword import build_pair_tokenizer
from errors import ConfigError
from lightning_modules.base import TformerModule
from lightning_modules.metrics import corpus_bleu
from lightning_modules.optim import OptimConfig
from models.decoding import Decoding, beam_search, greedy_search
from models.seq2seq import Seq2SeqConfig

FAMILY = "seq2seq"
log = logging.getLogger("tformer")


def _gather(obj: list) -> list:
    """Concatenate a list from every DDP rank (unchanged on a single process)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return obj
    parts = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, obj)
    return [x for part in parts for x in part]


def _unique_sorted(outputs: list[tuple]) -> list[tuple]:
    """One entry per corpus index, in corpus order (DDP ranks may repeat a batch to even out)."""
    return sorted({o[0]: o for o in outputs}.values())


class Seq2SeqLitModule(TformerModule):
    """Everything needed to rebuild the model and its tokenizer is saved with the checkpoint."""

    family = FAMILY
    config_class = Seq2SeqConfig

    def __init__(
        self,
        model: Seq2SeqConfig | dict,
        tokenizer: dict,
        optim: dict | None = None,
        compile: bool = False,
        label_smoothing: float = 0.1,
        val_bleu: bool = True,
        val_beam_size: int = 1,
        beam_size: int = 5,
        length_penalty: float = 1.0,
        max_len_a: float = 1.2,
        max_len_b: int = 10,
        num_examples: int = 5,
    ):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"module.label_smoothing must be in [0, 1), got {label_smoothing}")
        for name, value in (("val_beam_size", val_beam_size), ("beam_size", beam_size)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"module.{name} must be a positive integer, got {value!r}")
        self.config = model if isinstance(model, Seq2SeqConfig) else Seq2SeqConfig(**model)
        hparams = dict(model=self.config.to_dict(), tokenizer=tokenizer, optim=optim, compile=compile,
                       label_smoothing=label_smoothing, val_bleu=val_bleu, val_beam_size=val_beam_size,
                       beam_size=beam_size, length_penalty=length_penalty, max_len_a=max_len_a, max_len_b=max_len_b,
                       num_examples=num_examples)  # fmt: skip
        # Plain values: the checkpoint alone rebuilds model and tokenizer. Not sent to the loggers: the tokenizer's
        # JSON is large, and train.py logs the whole config.
        self.save_hyperparameters(hparams, logger=False)
        self.optim_cfg = OptimConfig(**(optim or {}))
        self.model = self.config.build()  # model.impl: native, or torch.nn.Transformer
        self.tokenizer = build_pair_tokenizer(tokenizer)
        self._check_vocab()
        self.pad_id, self.bos_id, self.eos_id = self.tokenizer.pad_id, self.tokenizer.bos_id, self.tokenizer.eos_id
        self.val_loss = MeanMetric()
        self._outputs: list[tuple[int, str, str, str]] = []  # (idx, source, reference, hypothesis)
        self._signature_logged = False
        if compile:
            self.model.compile()  # in place: parameter names stay; decoding calls encode/decode, never compiled

    def _check_vocab(self) -> None:
        """The model's vocabularies are the tokenizer's: one joint vocab_size, or (a tokenizer with separate source
        and target vocabularies exposing src_vocab_size / tgt_vocab_size) model.src_vocab_size / tgt_vocab_size.
        Both sides share the special ids (pad, bos, eos)."""
        c, tok = self.config, self.tokenizer
        for side, size in (("src", c.src_vocab), ("tgt", c.tgt_vocab)):
            want = getattr(tok, f"{side}_vocab_size", tok.vocab_size)
            if size != want:
                field = f"{side}_vocab_size" if getattr(c, f"{side}_vocab_size") is not None else "vocab_size"
                raise ConfigError(f"model.{field}={size} does not match the tokenizer's {want}")

    # -- training
    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.model(src, tgt_in, src.eq(self.pad_id))

    def _loss(self, logits: torch.Tensor, tgt_out: torch.Tensor, smoothing: float) -> torch.Tensor:
        """Mean over non-pad target tokens of the (label-smoothed) cross-entropy."""
        return F.cross_entropy(
            logits.float().view(-1, logits.size(-1)),
            tgt_out.view(-1),
            ignore_index=self.pad_id,
            label_smoothing=smoothing,
        )

    def training_step(self, batch, batch_idx):
        logits = self(batch["src"], batch["tgt_in"])
        loss = self._loss(logits, batch["tgt_out"], self.hparams.label_smoothing)
        self.log_step("train/loss", loss, prog_bar=True)  # train/grad_norm: TformerModule
        self.log_step("train/tokens", batch["tgt_out"].ne(self.pad_id).sum(), reduce="sum")
        return loss

    # -- decoding
    @torch.no_grad()
    def generate_ids(self, src: torch.Tensor, *, beam_size: int | None = None, **kw) -> list[list[int]]:
        """Token ids of the translations of a padded source batch (B, S)."""
        k = self.hparams.beam_size if beam_size is None else beam_size
        decoding = Decoding(
            bos_id=self.bos_id,
            eos_id=self.eos_id,
            pad_id=self.pad_id,
            max_len_a=kw.get("max_len_a", self.hparams.max_len_a),
            max_len_b=kw.get("max_len_b", self.hparams.max_len_b),
        )
        mask = src.eq(self.pad_id)
        if k == 1:
            return greedy_search(self.model, src, mask, decoding)
        lp = kw.get("length_penalty", self.hparams.length_penalty)
        return beam_search(self.model, src, mask, decoding, beam_size=k, length_penalty=lp)

    @torch.no_grad()
    def translate(self, sentences: list[str], *, beam_size: int | None = None, batch_size: int = 64, **kw) -> list[str]:
        """Translate raw sentences. Empty lines give empty translations; sentences longer than
        model.max_len tokens (EOS included) are truncated with a warning."""
        ids = [self.tokenizer.encode(s) if s.strip() else [] for s in sentences]
        cut = self.config.max_len - 1
        long = [i for i, x in enumerate(ids) if len(x) > cut]
        if long:
            warnings.warn(
                f"{len(long)} sentence(s) (first: #{long[0] + 1}) exceed the model's maximum of {cut} tokens "
                f"(model.max_len={self.config.max_len} with EOS) and were truncated",
                stacklevel=2,
            )
        out = [""] * len(sentences)
        todo = sorted((i for i, x in enumerate(ids) if x), key=lambda i: len(ids[i]))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            rows = [ids[i][:cut] + [self.eos_id] for i in chunk]
            src = torch.full((len(rows), max(map(len, rows))), self.pad_id, dtype=torch.long, device=self.device)
            for r, row in enumerate(rows):
                src[r, : len(row)] = torch.tensor(row, device=self.device)
            for i, hyp in zip(chunk, self.generate_ids(src, beam_size=beam_size, **kw)):
                out[i] = self.tokenizer.decode(hyp)
        return out

    # -- validation and test
    def _score_batch(self, batch, beam_size: int) -> None:
        hyps = self.generate_ids(batch["src"], beam_size=beam_size)
        for i, src, ref, hyp in zip(batch["idx"].tolist(), batch["src_text"], batch["tgt_text"], hyps):
            self._outputs.append((i, src, ref, self.tokenizer.decode(hyp)))

    def on_validation_epoch_start(self) -> None:
        self._outputs = []

    def validation_step(self, batch, batch_idx):
        logits = self(batch["src"], batch["tgt_in"])
        tokens = batch["tgt_out"].ne(self.pad_id).sum()
        self.val_loss.update(self._loss(logits, batch["tgt_out"], 0.0), weight=tokens)
        if self.hparams.val_bleu:
            self._score_batch(batch, self.hparams.val_beam_size)

    def on_validation_epoch_end(self) -> None:
        self.log("val/loss", self.val_loss.compute(), prog_bar=True)
        self.val_loss.reset()
        if not self.hparams.val_bleu or self.trainer.sanity_checking:
            return
        outputs = _unique_sorted(_gather(self._outputs))
        if not outputs:
            return
        score, signature = corpus_bleu([o[3] for o in outputs], [o[2] for o in outputs])
        self.log("val/bleu", score.score, prog_bar=True)  # every rank has the gathered corpus
        if self.trainer.is_global_zero:
            self._write_examples(outputs[: self.hparams.num_examples], score.score, signature)
            if not self._signature_logged:
                for logger in self.loggers:
                    logger.log_hyperparams({"bleu_signature": signature})
                self._signature_logged = True

    def _run_dir(self) -> Path:
        return Path(self.trainer.default_root_dir if self.trainer is not None else ".")

    def _write_examples(self, examples, bleu: float, signature: str) -> None:
        step = self.global_step
        lines = [f"=== step {step}: val BLEU {bleu:.2f} ({signature})"]
        for _, src, ref, hyp in examples:
            lines += [f"SRC: {src}", f"REF: {ref}", f"HYP: {hyp}", ""]
        run = self._run_dir()
        run.mkdir(parents=True, exist_ok=True)
        with open(run / "translations.txt", "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                rows = [[step, src, ref, hyp] for _, src, ref, hyp in examples]
                logger.log_text(key="translations", columns=["step", "source", "reference", "hypothesis"], data=rows)

    def on_test_epoch_start(self) -> None:
        self._outputs = []

    def test_step(self, batch, batch_idx):
        self._score_batch(batch, self.hparams.beam_size)

    def on_test_epoch_end(self) -> None:
        outputs = _unique_sorted(_gather(self._outputs))
        if not outputs:
            return
        score, signature = corpus_bleu([o[3] for o in outputs], [o[2] for o in outputs])
        self.log("test/bleu", score.score)
        if not self.trainer.is_global_zero:
            return
        run = self._run_dir()
        run.mkdir(parents=True, exist_ok=True)
        (run / "test_hypotheses.txt").write_text("".join(o[3] + "\n" for o in outputs), encoding="utf-8")
        decoding = f"beam_size={self.hparams.beam_size} length_penalty={self.hparams.length_penalty}"
        summary = f"{score}\n{signature}\n{decoding}\n"
        (run / "test_bleu.txt").write_text(summary, encoding="utf-8")
        log.info("Test BLEU: %s (%s); hypotheses in %s", score, signature, run / "test_hypotheses.txt")
        for logger in self.loggers:
            logger.log_hyperparams({"bleu_signature": signature})
