"""Measuring runs: throughput, MFU, step / validation / total time, peak memory, generation metrics.

`Measure` logs `perf/*` metrics to every logger (so metrics.csv and W&B) while training and writes
<run>/measure.json at the end; `GenerationMetrics` times N samples of M words after training and
scores their word accuracy (share of generated words found in the training text), into `gen/*` and
<run>/generation.json. Both are cheap: arithmetic on counters, one CUDA sync per logging step.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from statistics import mean, median

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.throughput import Throughput, get_available_flops
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger("tformer")

# ---------------------------------------------------------------------------------------------------------
# Device peaks

# Dense (no 2:4 sparsity) peak FLOP/s per GPU, checked before Lightning's table, which does not recognise
# a plain "NVIDIA H200" and lists the H200 at its sparse figures. Keys are matched in order against the
# lower-cased device name ("gh200" before "h200").
PEAK_FLOPS: dict[str, dict[torch.dtype | str, float]] = {
    "gh200": {torch.float32: 67e12, "tfloat32": 494.7e12, torch.bfloat16: 989.4e12, torch.float16: 989.4e12},
    "h200 nvl": {torch.float32: 60e12, "tfloat32": 417.5e12, torch.bfloat16: 835.5e12, torch.float16: 835.5e12},
    "h200": {torch.float32: 67e12, "tfloat32": 494.7e12, torch.bfloat16: 989.4e12, torch.float16: 989.4e12},
}


def compute_dtype(precision: str | int) -> torch.dtype:
    """The matmul dtype of a Lightning precision setting ("bf16-mixed" -> bfloat16, "32-true" -> float32)."""
    p = str(precision)
    if p.startswith("bf16"):
        return torch.bfloat16
    if p.startswith("16"):
        return torch.float16
    if p.startswith("64"):
        return torch.float64
    return torch.float32


def peak_flops(device: torch.device, dtype: torch.dtype) -> float | None:
    """Theoretical peak FLOP/s of one device for matmuls in dtype; None on CPUs and unknown devices."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device).lower()
    for key, table in PEAK_FLOPS.items():
        if key in name:
            use_tf32 = dtype == torch.float32 and torch.get_float32_matmul_precision() != "highest"
            return table.get("tfloat32" if use_tf32 else dtype)
    flops = get_available_flops(device, dtype)
    return float(flops) if flops else None


# ---------------------------------------------------------------------------------------------------------
# Memory


def rss_bytes() -> int | None:
    """Resident set size of this process now (Linux), else None."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    """Peak RSS since the last reset_peak_rss() (VmHWM), else the process' lifetime peak (ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    except (ImportError, OSError):
        return None


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_peak_rss()


def peak_memory(device: torch.device) -> int | None:
    """Peak bytes since reset_peak_memory: CUDA allocator peak on GPUs, process peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return peak_rss_bytes()


def current_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    return rss_bytes()


def _log(trainer: L.Trainer, metrics: dict[str, float]) -> None:
    """Write metrics to every logger at the step Lightning gives the current batch's train/loss
    (the index of the last optimizer step, which is also where it logs val/loss)."""
    metrics = {k: float(v) for k, v in metrics.items() if v is not None}
    if metrics:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=max(0, trainer.global_step - 1))


def _tokens(batch) -> tuple[int, int] | None:
    """(sequences, tokens) of a batch: its first tensor, (B, T) token ids."""
    x = batch[0] if isinstance(batch, (list, tuple)) else batch
    if isinstance(batch, dict):
        x = next((v for v in batch.values() if isinstance(v, torch.Tensor)), None)
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        return None
    return x.size(0), x.numel()


MB = 1024 * 1024


class Measure(L.Callback):
    """Logs perf/{tokens_per_sec, flops_per_sec, mfu, step_time, val_time, peak_memory_mb, ...} to every logger.

    Rates come from Lightning's `Throughput` (fabric.utilities.throughput) over each logging interval
    (trainer.log_every_n_steps optimizer steps), with validation time taken out. Lightning's own
    ThroughputMonitor callback is not used because it logs validation rates against validation batch
    indices (which scrambles the step axis of metrics.csv) and needs 100 batches before its first rate.
    MFU = model FLOP/s per device / the device's peak (`peak_flops`): absent on CPUs and unknown GPUs.
    Model FLOPs per token come from the module's `config.flops_per_token(T)` (6N + 12·L·T·C for the GPT).
    """

    def __init__(self, output_dir: str, prefix: str = "perf/"):
        self.output_dir = Path(output_dir)
        self.prefix = prefix
        self.peak: float | None = None
        self.summary: dict = {}

    # -- set-up -------------------------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.device = trainer.strategy.root_device
        self.precision = str(trainer.precision)
        self.peak = peak_flops(self.device, compute_dtype(self.precision))
        self.throughput = Throughput(available_flops=self.peak, world_size=trainer.world_size, window_size=2)
        self.history: dict[str, list[float]] = {"tokens_per_sec": [], "step_time": [], "mfu": [], "val_time": []}
        self.estimate = None
        self.shape: tuple[int, int] | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync()
        reset_peak_memory(self.device)
        self.memory_at_start = current_memory(self.device)
        self.fit_start = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync()
        self.train_start = time.perf_counter()
        self.paused = 0.0  # seconds spent validating since train_start
        self.batches = self.samples = self.tokens = 0
        self.interval_flops = 0
        self.last = (0.0, trainer.global_step)  # (train seconds, optimizer step) at the last log
        self.throughput.reset()
        self.throughput.update(time=0.0, batches=0, samples=0, lengths=0, flops=0)

    # -- training -----------------------------------------------------------------------------------------
    def _flops_per_batch(self, pl_module: L.LightningModule, batch_size: int, seq_len: int) -> int | None:
        config = getattr(pl_module, "config", None)
        if config is None or not hasattr(config, "flops_per_token"):
            return None
        return int(config.flops_per_token(seq_len)) * batch_size * seq_len

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        shape = _tokens(batch)
        if shape is None:
            return
        b, n = shape
        self.batches, self.samples, self.tokens = self.batches + 1, self.samples + b, self.tokens + n
        flops = self._flops_per_batch(pl_module, b, n // b)
        if flops is not None:
            self.interval_flops += flops
        if self.shape is None:
            self.shape = (b, n // b)
            self.estimate = self._memory_estimate(pl_module, b, n // b)
        step = trainer.global_step
        every = max(1, trainer.log_every_n_steps)
        if step == self.last[1] or step % every != 0:
            return
        self._sync()
        elapsed = time.perf_counter() - self.train_start - self.paused
        if elapsed <= self.last[0]:
            return
        self.throughput.update(
            time=elapsed,
            batches=self.batches,
            samples=self.samples,
            lengths=self.tokens,
            flops=self.interval_flops if flops is not None else None,
        )
        self.interval_flops = 0
        rates = self.throughput.compute()
        step_time = (elapsed - self.last[0]) / (step - self.last[1])
        self.last = (elapsed, step)
        metrics = {
            "tokens_per_sec": rates.get("device/items_per_sec", 0.0) * trainer.world_size,
            "step_time": step_time,
            "flops_per_sec": rates.get("device/flops_per_sec"),
            "mfu": rates.get("device/mfu"),
            "peak_memory_mb": self._peak_mb(),
        }
        if self.estimate is not None and "estimated_memory_mb" not in self.summary:
            metrics["estimated_memory_mb"] = self.estimate["total"] / MB
            self.summary["estimated_memory_mb"] = metrics["estimated_memory_mb"]
        for key in ("tokens_per_sec", "step_time", "mfu"):
            if metrics.get(key) is not None:
                self.history[key].append(metrics[key])
        if trainer.is_global_zero:
            _log(trainer, {self.prefix + k: v for k, v in metrics.items()})

    # -- validation ---------------------------------------------------------------------------------------
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync()
        self.val_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync()
        seconds = time.perf_counter() - self.val_start
        if trainer.sanity_checking:
            return
        if hasattr(self, "train_start"):
            self.paused += seconds
        self.history["val_time"].append(seconds)
        if trainer.is_global_zero:
            _log(trainer, {self.prefix + "val_time": seconds})

    # -- end ----------------------------------------------------------------------------------------------
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync()
        total = time.perf_counter() - self.fit_start
        h = self.history
        config = getattr(pl_module, "config", None)
        seq_len = self.shape[1] if self.shape else None
        fpt = int(config.flops_per_token(seq_len)) if seq_len and hasattr(config, "flops_per_token") else None
        self.summary.update(
            {
                "device": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else self.device.type,
                "precision": self.precision,
                "world_size": trainer.world_size,
                "peak_flops": self.peak,
                "params": sum(p.numel() for p in pl_module.parameters()),
                "batch_size": self.shape[0] if self.shape else None,
                "seq_len": self.shape[1] if self.shape else None,
                "flops_per_token": fpt,
                "steps": trainer.global_step,
                "tokens_per_sec": median(h["tokens_per_sec"]) if h["tokens_per_sec"] else None,
                "step_time": median(h["step_time"]) if h["step_time"] else None,
                "mfu": median(h["mfu"]) if h["mfu"] else None,
                "val_time": mean(h["val_time"]) if h["val_time"] else None,
                "val_passes": len(h["val_time"]),
                "total_time": total,
                "memory_kind": "cuda_max_allocated" if self.device.type == "cuda" else "process_peak_rss",
                "memory_at_start_mb": (self.memory_at_start or 0) / MB if self.memory_at_start is not None else None,
                "peak_memory_mb": self._peak_mb(),
                "estimated_memory": self.estimate,
                "estimated_memory_mb": self.estimate["total"] / MB if self.estimate else None,
                "history": h,
            }
        )
        if trainer.is_global_zero:
            peak = self.summary["peak_memory_mb"]
            _log(trainer, {self.prefix + "total_time": total, self.prefix + "peak_memory_mb": peak})
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "measure.json").write_text(json.dumps(self.summary, indent=2))

    def _peak_mb(self) -> float | None:
        peak = peak_memory(self.device)
        return peak / MB if peak is not None else None

    def _memory_estimate(self, pl_module: L.LightningModule, batch_size: int, seq_len: int) -> dict | None:
        from models.gpt import GPTConfig
        from models.sizing import memory_estimate

        config = getattr(pl_module, "config", None)
        if not isinstance(config, GPTConfig):
            return None
        try:
            est = memory_estimate(config, batch_size, seq_len, precision=self.precision, device=self.device.type)
        except ValueError as err:  # a precision the estimate does not model
            log.warning("no memory estimate: %s", err)
            return None
        return est.to_dict()

    def _sync(self) -> None:
        if getattr(self, "device", None) is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


# ---------------------------------------------------------------------------------------------------------
# Generation metrics

WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def words(text: str) -> list[str]:
    """Lower-cased words: runs of letters, with inner apostrophes ("o'er"); punctuation and digits split."""
    return [w.lower() for w in WORD.findall(text)]


def vocabulary(text: str) -> set[str]:
    return set(words(text))


def word_accuracy(generated: Iterable[str], vocab: set[str]) -> float | None:
    """Share of generated words found in vocab (None when there are no words)."""
    generated = list(generated)
    if not generated:
        return None
    return sum(w in vocab for w in generated) / len(generated)


def complete_words(text: str) -> list[str]:
    """words(text), without a last word that may have been cut off (text does not end after it)."""
    found = words(text)
    return found[:-1] if found and text[-1].isalpha() else found


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def _training_text(trainer: L.Trainer) -> str | None:
    dm = trainer.datamodule
    tokens, tokenizer = getattr(dm, "train_tokens", None), getattr(dm, "tokenizer", None)
    if tokens is None or tokenizer is None:
        return None
    return tokenizer.decode(np.asarray(tokens).astype(np.int64).tolist())


class GenerationMetrics(L.Callback):
    """After training, time `num_samples` samples of `num_words` words each and score their words.

    Each sample is generated alone (batch 1) from the best checkpoint's weights with a token budget of
    num_words x (tokens per word of the training text) x 1.2, extended until it holds num_words complete
    words. Logs gen/{time_mean, time_p50, time_p90, word_accuracy, words} and writes generation.json
    (settings, summary, per-sample time / words / accuracy and the texts).
    """

    def __init__(
        self,
        output_dir: str,
        num_samples: int = 50,
        num_words: int = 100,
        prompt: str = "\n",
        temperature: float = 0.8,
        top_k: int | None = 200,
        top_p: float | None = None,
        seed: int | None = 1337,
    ):
        if num_samples < 0 or num_words <= 0:
            raise ValueError(
                f"callbacks.generation: num_samples must be >= 0 and num_words > 0, got {num_samples}, {num_words}"
            )
        self.output_dir = Path(output_dir)
        self.num_samples, self.num_words, self.prompt = num_samples, num_words, prompt
        self.temperature, self.top_k, self.top_p, self.seed = temperature, top_k, top_p, seed
        self.result: dict = {}

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.num_samples <= 0 or not hasattr(pl_module, "sample"):
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best and Path(best).is_file():
            pl_module.load_state_dict(torch.load(best, map_location=pl_module.device, weights_only=False)["state_dict"])
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
        _log(trainer, {f"gen/{k}": v for k, v in self.result["summary"].items()})
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
        kwargs = dict(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, seed=seed)
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
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "seed": self.seed,
        }
        return {"settings": settings, "summary": summary, "samples": samples}
