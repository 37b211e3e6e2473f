"""Which attention kernel runs, and how fast: model.attention = sdpa | flash | math on a GPT training step.

    python bench/attention_kernels.py                          # GPU: gpt_small sizes, bf16, block 1024
    python bench/attention_kernels.py --n-layer 2 --block 128  # CPU: small sizes (flash is skipped there)

For each backend it times forward+backward steps (after warm-up) and lists, from the PyTorch profiler, the
attention kernels that actually ran (e.g. `flash` in the CUDA kernel names under sdpa/flash, plain matmul +
softmax under math). SDPA's own backends are also timed by pinning them with torch.nn.attention.sdpa_kernel.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.gpt import GPT, GPTConfig  # noqa: E402

KERNEL_WORDS = ("flash", "efficient", "cudnn", "softmax", "sdpa", "attention", "fmha")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-layer", type=int, default=6)
    p.add_argument("--n-head", type=int, default=6)
    p.add_argument("--n-embd", type=int, default=384)
    p.add_argument("--block", type=int, default=1024)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--vocab", type=int, default=50304, help="GPT-2 BPE (padded); 65 for characters")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--json", type=Path, help="also write the results here")
    return p.parse_args()


def kernel_names(prof, *, cuda: bool) -> list[str]:
    """Attention-related names the profiler saw: on CUDA the GPU kernels themselves (the proof of which
    kernel ran), on CPU the operators. The loss's log-softmax and autograd's bookkeeping are left out;
    templated kernel names are cut at their first '<'."""
    from torch.autograd import DeviceType

    names = set()
    for e in prof.key_averages():
        if cuda and e.device_type != DeviceType.CUDA:
            continue
        name = e.key.split("<", 1)[0].removeprefix("void ").strip()
        low = name.lower()
        if (
            any(w in low for w in KERNEL_WORDS)
            and "log_softmax" not in low
            and not name.startswith(("LogSoftmax", "autograd::"))
        ):
            names.add(name)
    return sorted(names)


def sdpa_pin(name: str):
    """A context that allows only one of SDPA's own kernels (or none: let SDPA choose)."""
    if name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
               "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}[name]  # fmt: skip
    return sdpa_kernel(backend)


def step(model: GPT, idx: torch.Tensor, device: str, dtype: torch.dtype) -> None:
    with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
        _, loss = model(idx, idx)
    loss.backward()
    model.zero_grad(set_to_none=True)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(attention: str, pin: str, args, device: str, dtype: torch.dtype) -> dict:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=args.vocab, block_size=args.block, n_layer=args.n_layer, n_head=args.n_head,
                    n_embd=args.n_embd, attention=attention, dropout=0.0)  # fmt: skip
    model = GPT(cfg).to(device)
    idx = torch.randint(0, cfg.vocab_size, (args.batch, args.block), device=device)
    row = {"model.attention": attention, "sdpa kernel": pin, "ok": True}
    try:
        with sdpa_pin(pin):
            for _ in range(args.warmup):
                step(model, idx, device, dtype)
            sync(device)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(model, idx, device, dtype)
            sync(device)
            ms = (time.perf_counter() - t0) / args.steps * 1e3
            peak_mib = round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None
            activities = [torch.profiler.ProfilerActivity.CPU]
            if device == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            with torch.profiler.profile(activities=activities) as prof:
                step(model, idx, device, dtype)
                sync(device)
    except RuntimeError as e:
        return row | {"ok": False, "error": str(e).splitlines()[0][:160]}
    kernels = kernel_names(prof, cuda=device == "cuda")
    tokens = args.batch * args.block
    timing = {"ms/step": round(ms, 2), "tokens/s": round(tokens / ms * 1e3), "peak MiB": peak_mib}
    return row | timing | {"kernels": kernels[:8]}


def main() -> None:
    args = parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    if device == "cpu" and dtype != torch.float32:
        dtype = torch.float32
    cases = [("sdpa", "auto"), ("flash", "auto"), ("math", "auto")]
    if device == "cuda":
        cases += [("sdpa", "flash"), ("sdpa", "efficient"), ("sdpa", "cudnn"), ("sdpa", "math")]
    device_name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"# {device_name}, {dtype}, GPT {args.n_layer}/{args.n_head}/{args.n_embd}, batch {args.batch} x "
          f"block {args.block}, {args.steps} steps, torch {torch.__version__}")  # fmt: skip
    print("| model.attention | sdpa kernel | ms/step | tokens/s | peak MiB | attention kernels seen by the profiler |")
    print("|---|---|---|---|---|---|")
    results = []
    for attention, pin in cases:
        r = measure(attention, pin, args, device, dtype)
        results.append(r)
        if r["ok"]:
            print(
                f"| {attention} | {pin} | {r['ms/step']} | {r['tokens/s']} | {r['peak MiB'] or '-'} | "
                f"{', '.join(r['kernels']) or '-'} |"
            )
        else:
            print(f"| {attention} | {pin} | - | - | - | unavailable: {r['error']} |")
    if args.json:
        args.json.write_text(json.dumps({"device": device_name, "args": vars(args) | {"json": None},
                                         "results": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
