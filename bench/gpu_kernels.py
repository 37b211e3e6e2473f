"""The GPU benchmark's kernels part: attention kernels forward+backward (and which CUDA kernels ran), and the
memory estimate against the allocator's peak (bench/attention_kernels.py, bench/memory_check.py)."""

from __future__ import annotations

import argparse
import sys

from bench.harness import ROOT, Bench, say
from bench.tables import fmt


def part_kernels(bench: Bench) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "bench"))
    import attention_kernels
    import memory_check

    cuda = bench.device["cuda"]
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    sizes = [(16, 8), (32, 4), (64, 2)] if bench.smoke else [(256, 64), (1024, 16), (4096, 4)]  # 16k tokens a step
    model = dict(n_layer=1, n_head=2, n_embd=32) if bench.smoke else dict(n_layer=6, n_head=6, n_embd=384)
    cases = [("sdpa", "auto"), ("flash", "auto"), ("math", "auto")]
    if cuda:
        cases += [("sdpa", "flash"), ("sdpa", "efficient"), ("sdpa", "cudnn"), ("sdpa", "math")]
    attention, lines = (
        [],
        [
            "| block | batch | model.attention | sdpa kernel | ms fwd+bwd | tokens/s | peak MiB "
            "| kernels the profiler saw |",
            "|---:|---:|---|---|---:|---:|---:|---|",
        ],
    )
    for block, batch in sizes:
        args = argparse.Namespace(
            **model, block=block, batch=batch, vocab=65, steps=2 if bench.smoke else 10, warmup=1 if bench.smoke else 3
        )
        for name, pin in cases:
            if bench.left() < 30:
                break
            r = attention_kernels.measure(name, pin, args, device, dtype) | {"block": block, "batch": batch}
            attention.append(r)
            shown = ", ".join(r.get("kernels", [])) or "-"
            if not r["ok"]:
                shown = f"unavailable: {r['error']}"
            lines.append(
                f"| {block} | {batch} | {name} | {pin} | {r.get('ms/step', '-')} | {fmt(r.get('tokens/s'))} "
                f"| {r.get('peak MiB') or '-'} | {shown} |"
            )
            if cuda:
                torch.cuda.empty_cache()
    say(f"  attention: {len(attention)} timings")
    precision = "bf16-mixed" if cuda else "32-true"
    configs = memory_check.load_sizes("gpu" if cuda else "cpu")[: 1 if bench.smoke else None]
    specs = [{**dict(zip(memory_check.KEYS, v)), "device": device, "precision": precision} for v in configs]

    def measure_memory(spec: dict) -> tuple[dict, dict | None, str]:
        # the allocator peak is per process: configurations measured side by side do not disturb each other
        if bench.left() < 40:
            return spec, None, "skipped: budget"
        row, error = memory_check.run_config(spec, timeout=bench.timeout(150))
        say(f"  memory {spec['name']}: {'ok' if row else 'failed'}")
        return spec, row, error

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=bench.args.memory_jobs if cuda else 1) as pool:
        done = list(pool.map(measure_memory, specs))
    rows = [row for _, row, _ in done if row]
    failed = [{"name": spec["name"], "error": error[-500:]} for spec, row, error in done if row is None]
    memory = memory_check.table(rows, device=device) if rows else "(no configuration measured)"
    worst = max((abs(r["estimate"]["total"] / r["peak"] - 1) for r in rows if r["peak"]), default=None)
    table = (
        f"Attention, GPT {model['n_layer']}/{model['n_head']}/{model['n_embd']}, {batch * block:,} tokens a "
        f"step, {dtype}:\n\n" + "\n".join(lines) + f"\n\nMemory estimate (models/sizing.py) against "
        f"{'torch.cuda.max_memory_allocated' if cuda else 'peak RSS'}, {precision}; largest deviation "
        f"{fmt(worst, pct=True)}:\n\n{memory}" + "".join(f"\n- {f['name']}: {f['error']}" for f in failed)
    )
    bench.save("kernels", {"attention": attention, "memory": rows, "memory_failed": failed}, table)
