"""What the device can do and what the process holds: peak FLOP/s per GPU, memory probes (CUDA and RSS)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from lightning.fabric.utilities.throughput import get_available_flops

# Dense (no 2:4 sparsity) peak FLOP/s per GPU, checked before Lightning's table, which does not recognise
# a plain "NVIDIA H200" and lists the H200 and the H100 NVL at their sparse figures. Keys are matched in
# order against the lower-cased device name ("gh200" before "h200").
PEAK_FLOPS: dict[str, dict[torch.dtype | str, float]] = {
    "gh200": {torch.float32: 67e12, "tfloat32": 494.7e12, torch.bfloat16: 989.4e12, torch.float16: 989.4e12},
    "h200 nvl": {torch.float32: 60e12, "tfloat32": 417.5e12, torch.bfloat16: 835.5e12, torch.float16: 835.5e12},
    "h200": {torch.float32: 67e12, "tfloat32": 494.7e12, torch.bfloat16: 989.4e12, torch.float16: 989.4e12},
    # Lightning lists the H100 NVL at its sparse figures too (bf16 1978.8); dense per GPU:
    "h100 nvl": {torch.float32: 60e12, "tfloat32": 417.5e12, torch.bfloat16: 835.5e12, torch.float16: 835.5e12},
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


# Memory


def rss_bytes() -> int | None:
    """Resident set size of this process now (Linux), else None."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
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


# Time


LAUNCH_ENV = "TFORMER_LAUNCH_TIME"


def launch_time() -> float:
    """When this run was launched (Unix seconds): $TFORMER_LAUNCH_TIME, which train.py sets as it starts
    unless a launcher (a benchmark, a DDP parent) set it before, else the start of this process."""
    value = os.environ.get(LAUNCH_ENV)
    if value:
        try:
            return float(value)
        except ValueError:
            pass
    try:  # /proc/self/stat field 22: start time in clock ticks after boot; /proc/stat btime: boot time
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        btime = next(int(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines() if x.startswith("btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


def since_launch() -> float:
    """Wall-clock seconds since launch_time()."""
    return time.time() - launch_time()


_IMPORTED = time.time()
