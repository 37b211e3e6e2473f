"""Measure: throughput, MFU, step / validation / total time and peak memory of a training run.

Logs `perf/*` metrics to every logger (so metrics.csv and W&B) while training and writes
<run>/measure.json at the end. Cheap: arithmetic on counters, one CUDA sync per logging step.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from statistics import mean, median

import lightning as L
import torch
from lightning.fabric.utilities.throughput import Throughput

from lightning_modules.hardware import (
    compute_dtype,
    current_memory,
    peak_flops,
    peak_memory,
    reset_peak_memory,
    since_launch,
)

log = logging.getLogger("tformer")


def log_metrics(trainer: L.Trainer, metrics: dict[str, float]) -> None:
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
    `perf/elapsed`, logged with every validation, is the wall-clock time since launch
    (`hardware.launch_time`): "time to reach val loss X" reads off metrics.csv.
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
        self.history: dict[str, list[float]] = {
            "tokens_per_sec": [], "step_time": [], "mfu": [], "val_time": [], "elapsed": []
        }  # fmt: skip
        self.estimate = None
        self.shape: tuple[int, int] | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync()
        reset_peak_memory(self.device)
        self.memory_at_start = current_memory(self.device)
        self.fit_start = time.perf_counter()
        self.summary["launch_to_fit_start"] = since_launch()

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
        if trainer.global_step > 0 and "launch_to_first_step" not in self.summary:  # the first optimizer step done
            self.summary["launch_to_first_step"] = since_launch()
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
            log_metrics(trainer, {self.prefix + k: v for k, v in metrics.items()})

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
        self.history["elapsed"].append(since_launch())
        if trainer.is_global_zero:
            log_metrics(
                trainer, {self.prefix + "val_time": seconds, self.prefix + "elapsed": self.history["elapsed"][-1]}
            )

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
                "params": config.num_params() if hasattr(config, "num_params") else None,
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
                "launch_to_train_end": since_launch(),
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
            log_metrics(trainer, {self.prefix + "total_time": total, self.prefix + "peak_memory_mb": peak})
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "measure.json").write_text(json.dumps(self.summary, indent=2))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """A run stopped by a signal (training/signals.RunStopped, a SystemExit) keeps measure.json of its steps."""
        if isinstance(exception, SystemExit) and hasattr(self, "train_start"):
            self.summary["stopped"] = type(exception).__name__
            self.on_train_end(trainer, pl_module)

    def _peak_mb(self) -> float | None:
        peak = peak_memory(self.device)
        return peak / MB if peak is not None else None

    def _memory_estimate(self, pl_module: L.LightningModule, batch_size: int, seq_len: int) -> dict | None:
        from models.gpt import GPTConfig
        from models.memory import memory_estimate

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
