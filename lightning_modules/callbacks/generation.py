"""GenerationMetrics: after training, time N samples of M words and score their word accuracy, in bounded time."""

from __future__ import annotations

import json
import logging
import math
import time
from statistics import mean

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only

from errors import ConfigError
from lightning_modules.callbacks.best import use_best_weights
from lightning_modules.callbacks.measure import log_metrics
from lightning_modules.callbacks.progress import WorkProgress
from lightning_modules.callbacks.samples import SamplingCallback
from lightning_modules.compiling import eager
from lightning_modules.metrics import VOCAB_TEXT_TOKENS, complete_words, percentile, vocabulary, word_accuracy, words

log = logging.getLogger("tformer")


def _training_text(trainer: L.Trainer) -> str | None:
    dm = trainer.datamodule
    tokens, tokenizer = getattr(dm, "train_tokens", None), getattr(dm, "tokenizer", None)
    if tokens is None or tokenizer is None:
        return None
    return tokenizer.decode(np.asarray(tokens[:VOCAB_TEXT_TOKENS]).astype(np.int64).tolist())


class _OutOfTime(Exception):
    pass


class GenerationMetrics(SamplingCallback):
    """After training, generate `num_samples` samples of `num_words` words from the best weights, time them and
    score their words (word accuracy: the share found in the training text).

    The samples are generated `batch_size` at a time as one batch with the KV cache, with a token budget of
    num_words x (tokens per word of the training text) x 1.2. The samples of a batch still short of num_words
    complete words (a barely trained model writes mostly whitespace) are extended together, as one batch, for
    up to `max_rounds` rounds, each as long as the words per token they wrote so far say they need (at most
    twice the budget). All of it stops after `time_limit_s` seconds (null: no limit): the samples are then
    scored as they are and generation.json says where it stopped. Progress: a bar at a terminal, else a log
    line every 10 s. A sample's time: each round's time divided by the samples in it, summed over its rounds.
    Logs gen/{time_mean, time_p50, time_p90, word_accuracy, words} and writes generation.json (settings,
    summary, per-sample time / words / accuracy / rounds and the texts).
    """

    def __init__(
        self,
        output_dir: str,
        num_samples: int = 50,
        num_words: int = 100,
        batch_size: int = 50,
        time_limit_s: float | None = 60.0,
        max_rounds: int = 3,
        **sampling,
    ):
        if num_samples < 0 or num_words <= 0 or batch_size <= 0 or max_rounds < 0:
            raise ConfigError(
                f"callbacks.generation: num_samples and max_rounds must be >= 0, num_words and batch_size > 0, "
                f"got {num_samples}, {max_rounds}, {num_words}, {batch_size}"
            )
        if time_limit_s is not None and not time_limit_s > 0:
            raise ConfigError(f"callbacks.generation.time_limit_s={time_limit_s} must be > 0 (null: no limit)")
        super().__init__(output_dir, num_samples, **sampling)
        self.num_words, self.batch_size, self.max_rounds = num_words, batch_size, max_rounds
        self.time_limit_s = time_limit_s
        self.result: dict = {}

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.num_samples <= 0 or not hasattr(pl_module, "sample"):
            return
        use_best_weights(trainer, pl_module)
        text = _training_text(trainer)
        vocab = vocabulary(text) if text else None
        budget = self._token_budget(pl_module, text)
        limit = f", at most {self.time_limit_s:g} s" if self.time_limit_s else ""
        log.info("Generation metrics: %d samples of %d words (%d new tokens each, %d at a time%s)",
                 self.num_samples, self.num_words, budget, self.batch_size, limit)  # fmt: skip
        begin = time.perf_counter()
        self._deadline = begin + self.time_limit_s if self.time_limit_s else None
        samples: list[dict] = []
        self._stopped = False
        with WorkProgress("generation", total=self.num_samples * budget, unit="tok") as progress:
            for start in range(0, self.num_samples, self.batch_size):
                if self._stopped or (self._deadline is not None and time.perf_counter() > self._deadline):
                    self._stopped = True
                    break
                count = min(self.batch_size, self.num_samples - start)
                seed = None if self.seed is None else self.seed + start
                samples += self._batch(pl_module, count, budget, seed, progress)
        samples = [self._score(s, vocab) for s in samples]
        stopped = self._stop_note(samples) if self._stopped else None
        self.result = self._summarise(samples, budget, vocab is not None, stopped)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "generation.json").write_text(json.dumps(self.result, indent=2))
        if stopped:
            log.warning("Generation metrics: %s", stopped)
        log.info("Generation metrics: %d samples in %.1f s, %s", len(samples), time.perf_counter() - begin,
                 self._said(self.result["summary"]))  # fmt: skip
        log_metrics(trainer, {f"gen/{k}": v for k, v in self.result["summary"].items() if k != "samples"})
        for logger in trainer.loggers:
            logger.save()

    def _token_budget(self, pl_module: L.LightningModule, text: str | None) -> int:
        per_word = 6.0  # characters per word of English prose, used when the training text is unknown
        tokenizer = getattr(pl_module, "tokenizer", None)
        if text and tokenizer is not None:
            piece = text[:200_000]
            per_word = len(tokenizer.encode(piece)) / max(1, len(words(piece)))
        return max(1, math.ceil(self.num_words * per_word * 1.2))

    # -- generation -------------------------------------------------------------------------------------
    def _batch(self, pl_module, count: int, budget: int, seed: int | None, progress: WorkProgress) -> list[dict]:
        """count samples as one batch; then the ones short of words, together, for up to max_rounds rounds.
        Past the deadline: the samples with tokens so far (none that never got one)."""
        prompt = pl_module.tokenizer.encode(self.prompt) or [0]
        rows = [torch.tensor(prompt, dtype=torch.long, device=pl_module.device)] * count  # each sample's ids
        generator = None if seed is None else torch.Generator(device=pl_module.device).manual_seed(seed)
        samples = [{"time": 0.0, "rounds": 0, "text": ""} for _ in range(count)]
        active, new_tokens = list(range(count)), budget
        for round_ in range(1 + self.max_rounds):
            if round_:
                progress.add(len(active) * new_tokens)
            begin = time.perf_counter()
            before = rows[active[0]].size(0)
            extended = self._extend(pl_module, torch.stack([rows[i] for i in active]), new_tokens, generator, progress)
            share = (time.perf_counter() - begin) / len(active)
            for i, row in zip(active, extended):
                rows[i] = row
                samples[i]["time"] += share
                samples[i]["rounds"] += int(row.size(0) > before)
                samples[i]["text"] = pl_module.tokenizer.decode(row[len(prompt) :].tolist())
            if self._stopped:
                break
            short = [i for i in active if len(complete_words(samples[i]["text"])) < self.num_words]
            if not short:
                break
            generated = rows[short[0]].size(0) - len(prompt)
            new_tokens = self._more_tokens([samples[i]["text"] for i in short], generated, budget)
            active = short
        return [s for s in samples if s["rounds"]]

    def _more_tokens(self, texts: list[str], generated: int, budget: int) -> int:
        """Tokens the short samples still need, at the words per token they wrote (at most twice the budget)."""
        found = [len(complete_words(t)) for t in texts]
        rate = sum(found) / (generated * len(texts))  # complete words per token
        missing = self.num_words - min(found)
        return max(1, min(2 * budget, math.ceil(missing / rate * 1.2) if rate > 0 else 2 * budget))

    def _extend(self, pl_module, idx: torch.Tensor, new_tokens: int, generator, progress) -> torch.Tensor:
        """idx (B, T) -> (B, T + n), n = new_tokens or, past the deadline, the tokens of the chunks done by then.
        Without a time limit, chunks of 4 contexts (each new chunk's cache refill costs little); with one, the
        first chunk is 16 tokens and the next as many as a tenth of the limit allows (a stop loses one)."""
        longest = 4 * max(16, int(getattr(pl_module.config, "block_size", new_tokens)))
        chunk = longest if self._deadline is None else 16

        def on_token(_length: int) -> None:
            progress.update(idx.size(0))
            if self._deadline is not None and time.perf_counter() > self._deadline:
                raise _OutOfTime

        done = 0
        while done < new_tokens:
            n = min(chunk, new_tokens - done)
            begin = time.perf_counter()
            try:
                with eager():  # compiled blocks would recompile for every new length
                    idx = pl_module.model.generate(idx, n, generator=generator, on_token=on_token, **self.sampling)
            except _OutOfTime:
                self._stopped = True
                break
            done += n
            if self._deadline is not None:
                per_token = max(time.perf_counter() - begin, 1e-9) / n
                chunk = int(min(longest, max(16, self.time_limit_s / 10 / per_token)))
        return idx

    # -- scoring --------------------------------------------------------------------------------------------
    def _score(self, sample: dict, vocab: set[str] | None) -> dict:
        found = complete_words(sample["text"])[: self.num_words]
        hits = sum(w in vocab for w in found) if vocab is not None else None
        acc = word_accuracy(found, vocab) if vocab is not None else None
        return {"time": sample["time"], "words": len(found), "hits": hits, "word_accuracy": acc,
                "rounds": sample["rounds"], "text": sample["text"]}  # fmt: skip

    def _stop_note(self, samples: list[dict]) -> str:
        full = sum(s["words"] >= self.num_words for s in samples)
        return (f"stopped at callbacks.generation.time_limit_s={self.time_limit_s:g}: {full} of {self.num_samples} "
                f"samples reached {self.num_words} words; the scores cover the words written by then")  # fmt: skip

    @staticmethod
    def _said(summary: dict) -> str:
        acc = summary["word_accuracy"]
        words_each = f"{summary['words']:.3g} words each" if summary["words"] is not None else "no words"
        return words_each + (f", word accuracy {100 * acc:.0f}%" if acc is not None else "")

    def _summarise(self, samples: list[dict], budget: int, scored: bool, stopped: str | None) -> dict:
        times = [s["time"] for s in samples]
        n_words = sum(s["words"] for s in samples)
        hits = sum(s["hits"] or 0 for s in samples)
        summary = {
            "samples": len(samples),
            "time_mean": mean(times) if times else None,
            "time_p50": percentile(times, 50) if times else None,
            "time_p90": percentile(times, 90) if times else None,
            "words": n_words / len(samples) if samples else None,
            "word_accuracy": hits / n_words if scored and n_words else None,
        }
        settings = {
            "num_samples": self.num_samples,
            "num_words": self.num_words,
            "batch_size": self.batch_size,
            "token_budget": budget,
            "max_rounds": self.max_rounds,
            "time_limit_s": self.time_limit_s,
            "prompt": self.prompt,
            **self.sampling,
            "seed": self.seed,
        }
        return {"settings": settings, "summary": summary, "stopped": stopped, "samples": samples}
