"""GenerationMetrics: after training, time N samples of M words and score their word accuracy."""

from __future__ import annotations

import json
import logging
import math
import time
from statistics import mean

import lightning as L
import numpy as np
from lightning.pytorch.utilities import rank_zero_only
from tqdm import tqdm

from errors import ConfigError
from lightning_modules.callbacks.best import use_best_weights
from lightning_modules.callbacks.measure import log_metrics
from lightning_modules.callbacks.samples import SamplingCallback
from lightning_modules.metrics import VOCAB_TEXT_TOKENS, complete_words, percentile, vocabulary, word_accuracy, words

log = logging.getLogger("tformer")


def _training_text(trainer: L.Trainer) -> str | None:
    dm = trainer.datamodule
    tokens, tokenizer = getattr(dm, "train_tokens", None), getattr(dm, "tokenizer", None)
    if tokens is None or tokenizer is None:
        return None
    return tokenizer.decode(np.asarray(tokens[:VOCAB_TEXT_TOKENS]).astype(np.int64).tolist())


class GenerationMetrics(SamplingCallback):
    """After training, generate `num_samples` samples of `num_words` words from the best weights, time them and
    score their words (word accuracy: the share found in the training text).

    The samples are generated `batch_size` at a time as one batch with the KV cache (a progress bar counts
    the tokens), with a token budget of num_words x (tokens per word of the training text) x 1.2; the rare
    sample that still holds fewer than num_words complete words is extended alone. A sample's time is its
    batch's time divided by the batch's samples (plus its own extension, if any). Logs gen/{time_mean,
    time_p50, time_p90, word_accuracy, words} and writes generation.json (settings, summary, per-sample
    time / words / accuracy and the texts).
    """

    def __init__(self, output_dir: str, num_samples: int = 50, num_words: int = 100, batch_size: int = 50, **sampling):
        if num_samples < 0 or num_words <= 0 or batch_size <= 0:
            raise ConfigError(
                f"callbacks.generation: num_samples must be >= 0, num_words and batch_size > 0, got "
                f"{num_samples}, {num_words}, {batch_size}"
            )
        super().__init__(output_dir, num_samples, **sampling)
        self.num_words, self.batch_size = num_words, batch_size
        self.result: dict = {}

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.num_samples <= 0 or not hasattr(pl_module, "sample"):
            return
        use_best_weights(trainer, pl_module)
        text = _training_text(trainer)
        vocab = vocabulary(text) if text else None
        budget = self._token_budget(pl_module, text)
        log.info("Generation metrics: %d samples of %d words (%d new tokens each, %d at a time)",
                 self.num_samples, self.num_words, budget, self.batch_size)  # fmt: skip
        samples = []
        with tqdm(total=self.num_samples * budget, desc="generation", unit="tok", leave=False, mininterval=1) as bar:
            for start in range(0, self.num_samples, self.batch_size):
                count = min(self.batch_size, self.num_samples - start)
                seed = None if self.seed is None else self.seed + start
                begin = time.perf_counter()
                texts = self._sample(pl_module, budget, count, seed, on_token=lambda _, n=count: bar.update(n))
                share = (time.perf_counter() - begin) / count
                for generated in texts:
                    extra = time.perf_counter()
                    generated = self._complete(pl_module, generated, budget, seed)
                    samples.append(self._score(generated, vocab, share + time.perf_counter() - extra))
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

    def _sample(self, pl_module, budget: int, count: int, seed: int | None, on_token=None) -> list[str]:
        """count samples as one batch, without the prompt."""
        out = pl_module.sample(
            self.prompt, num_samples=count, max_new_tokens=budget, seed=seed, on_token=on_token, **self.sampling
        )
        return [s[len(self.prompt) :] if s.startswith(self.prompt) else s for s in out]

    def _complete(self, pl_module, generated: str, budget: int, seed: int | None) -> str:
        """Extend a sample (alone) until it holds num_words complete words; rarely needed."""
        for _ in range(3):
            if len(complete_words(generated)) >= self.num_words:
                break
            more = pl_module.sample(self.prompt + generated, num_samples=1, max_new_tokens=budget, seed=seed,
                                    **self.sampling)[0]  # fmt: skip
            generated = more[len(self.prompt) :]
        return generated

    def _score(self, generated: str, vocab: set[str] | None, seconds: float) -> dict:
        found = complete_words(generated)[: self.num_words]
        hits = sum(w in vocab for w in found) if vocab is not None else None
        acc = word_accuracy(found, vocab) if vocab is not None else None
        return {"time": seconds, "words": len(found), "hits": hits, "word_accuracy": acc, "text": generated}

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
            "batch_size": self.batch_size,
            "token_budget": budget,
            "prompt": self.prompt,
            **self.sampling,
            "seed": self.seed,
        }
        return {"settings": settings, "summary": summary, "samples": samples}
