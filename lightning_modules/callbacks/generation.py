"""GenerationMetrics: after training, time N samples of M words and score their word accuracy."""

from __future__ import annotations

import json
import math
import time
from statistics import mean

import lightning as L
import numpy as np
from lightning.pytorch.utilities import rank_zero_only

from lightning_modules.callbacks.best import use_best_weights
from lightning_modules.callbacks.measure import log_metrics
from lightning_modules.callbacks.samples import SamplingCallback
from lightning_modules.metrics import VOCAB_TEXT_TOKENS, complete_words, percentile, vocabulary, word_accuracy, words


def _training_text(trainer: L.Trainer) -> str | None:
    dm = trainer.datamodule
    tokens, tokenizer = getattr(dm, "train_tokens", None), getattr(dm, "tokenizer", None)
    if tokens is None or tokenizer is None:
        return None
    return tokenizer.decode(np.asarray(tokens[:VOCAB_TEXT_TOKENS]).astype(np.int64).tolist())


class GenerationMetrics(SamplingCallback):
    """After training, time `num_samples` samples of `num_words` words each and score their words.

    Each sample is generated alone (batch 1) from the best checkpoint's weights with a token budget of
    num_words x (tokens per word of the training text) x 1.2, extended until it holds num_words complete
    words. Logs gen/{time_mean, time_p50, time_p90, word_accuracy, words} and writes generation.json
    (settings, summary, per-sample time / words / accuracy and the texts).
    """

    def __init__(self, output_dir: str, num_samples: int = 50, num_words: int = 100, **sampling):
        if num_samples < 0 or num_words <= 0:
            raise ValueError(
                f"callbacks.generation: num_samples must be >= 0 and num_words > 0, got {num_samples}, {num_words}"
            )
        super().__init__(output_dir, num_samples, **sampling)
        self.num_words = num_words
        self.result: dict = {}

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.num_samples <= 0 or not hasattr(pl_module, "sample"):
            return
        use_best_weights(trainer, pl_module)
        text = _training_text(trainer)
        vocab = vocabulary(text) if text else None
        budget = self._token_budget(pl_module, text)
        samples = []
        for i in range(self.num_samples):
            seed = None if self.seed is None else self.seed + i
            start = time.perf_counter()
            generated = self._sample(pl_module, budget, seed)
            seconds = time.perf_counter() - start
            found = complete_words(generated)[: self.num_words]
            hits = sum(w in vocab for w in found) if vocab is not None else None
            acc = word_accuracy(found, vocab) if vocab is not None else None
            samples.append({"time": seconds, "words": len(found), "hits": hits, "word_accuracy": acc})
            samples[-1]["text"] = generated
        self.result = self._summarise(samples, budget, vocab is not None)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "generation.json").write_text(json.dumps(self.result, indent=2))
        log_metrics(trainer, {f"gen/{k}": v for k, v in self.result["summary"].items()})
        for logger in trainer.loggers:
            logger.save()

    def _token_budget(self, pl_module: L.LightningModule, text: str | None) -> int:
        per_word = 6.0  # characters per word of English prose, used when the training text is unknown
        tokenizer = getattr(pl_module, "tokenizer", None)
        if text and tokenizer is not None:
            piece = text[:200_000]
            per_word = len(tokenizer.encode(piece)) / max(1, len(words(piece)))
        return max(1, math.ceil(self.num_words * per_word * 1.2))

    def _sample(self, pl_module: L.LightningModule, budget: int, seed: int | None) -> str:
        kwargs = dict(seed=seed, **self.sampling)
        out = pl_module.sample(self.prompt, num_samples=1, max_new_tokens=budget, **kwargs)[0]
        for _ in range(3):  # rarely needed: a sample with unusually long words
            if len(complete_words(out[len(self.prompt) :])) >= self.num_words:
                break
            out = pl_module.sample(out, num_samples=1, max_new_tokens=budget, **kwargs)[0]
        return out[len(self.prompt) :] if out.startswith(self.prompt) else out

    def _summarise(self, samples: list[dict], budget: int, scored: bool) -> dict:
        times = [s["time"] for s in samples]
        n_words = sum(s["words"] for s in samples)
        hits = sum(s["hits"] or 0 for s in samples)
        summary = {
            "time_mean": mean(times),
            "time_p50": percentile(times, 50),
            "time_p90": percentile(times, 90),
            "words": n_words / len(samples),
            "word_accuracy": hits / n_words if scored and n_words else None,
        }
        settings = {
            "num_samples": self.num_samples,
            "num_words": self.num_words,
            "token_budget": budget,
            "prompt": self.prompt,
            **self.sampling,
            "seed": self.seed,
        }
        return {"settings": settings, "summary": summary, "samples": samples}
