"""The memory estimate (models/memory.py) against what training really holds.

    python bench/memory_check.py                                  # CPU, float32, CPU-sized configs
    python bench/memory_check.py --device cuda --precision bf16-mixed --sizes gpu

Each configuration (they differ in batch, block, width, depth, attention, vocabulary) runs in a fresh
subprocess: a warm-up fit loads everything, then the project's GPTLitModule trains 3 steps with the
Lightning Trainer and AdamW. Compared with the estimate:
- weights + gradients + AdamW states: the bytes of the tensors the trainer holds after a step;
- activations: the bytes autograd saves for backward during one training forward (saved_tensors_hooks);
- peak: CUDA allocator peak (cuda), or the growth of the process' peak RSS (cpu), over the memory in
  use before the model was built; the estimate's total is weights + AdamW + max(activations + weight
  copies + gradients in flight, gradients). On CPU the workers run with MALLOC_MMAP_THRESHOLD_=65536 so
  that freed tensors leave the RSS (glibc otherwise keeps them in its heap; --glibc-default shows that).
Prints a Markdown table (docs/measurement.md keeps one).
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The configurations measured: bench/memory_sizes.csv (a "cpu" and a "gpu" set, differing in batch, block,
# width, depth, attention kernel, dropout, vocabulary and the GPT's options: `options` holds model overrides,
# e.g. "positions=rope normalization=rmsnorm").
SIZES_FILE = Path(__file__).with_name("memory_sizes.csv")


def load_sizes(kind: str) -> list[tuple]:
    with open(SIZES_FILE, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["sizes"] == kind]
    ints = ("batch", "block", "n_embd", "n_head", "n_layer", "vocab")
    return [tuple(int(r[k]) if k in ints else float(r[k]) if k == "dropout" else r[k] for k in KEYS) for r in rows]


KEYS = ("name", "batch", "block", "n_embd", "n_head", "n_layer", "vocab", "attention", "dropout", "options")


def model_options(options: str) -> dict:
    """Model overrides "positions=rope n_kv_head=2" -> {"positions": "rope", "n_kv_head": 2}, typed as YAML."""
    import yaml

    return {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in options.split())}


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def saved_activation_bytes(model, x, y, *, device: str, precision: str) -> int:
    """Bytes of the distinct storages autograd saves during one training forward (parameters excluded)."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            _, loss = model(x, y)
    del loss
    return sum(seen.values())


def worker(spec: dict) -> dict:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    from lightning_modules.gpt import GPTLitModule
    from lightning_modules.hardware import current_memory, peak_memory, reset_peak_memory
    from models.gpt import GPTConfig
    from models.memory import memory_estimate

    device, precision = spec["device"], spec["precision"]
    torch_device = torch.device(device)
    if device == "cuda":
        torch.set_float32_matmul_precision("high")

    class Batches(IterableDataset):
        def __init__(self, b: int, t: int, v: int):
            self.b, self.t, self.v = b, t, v

        def __iter__(self):
            g = torch.Generator().manual_seed(0)
            while True:
                yield (
                    torch.randint(0, self.v, (self.b, self.t), generator=g),
                    torch.randint(0, self.v, (self.b, self.t), generator=g),
                )

    class Holdings(L.Callback):
        """After the second optimizer step: the bytes of weights, gradients and optimizer states."""

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step != 2:
                return
            params = list(pl_module.parameters())
            state = [v for s in trainer.optimizers[0].state.values() for v in s.values() if torch.is_tensor(v)]
            self.held = {
                "weights": _tensor_bytes(params),
                "gradients": _tensor_bytes(p.grad for p in params),
                "optimizer": _tensor_bytes(state),
            }

    def fit(cfg: GPTConfig, b: int, t: int, steps: int, holdings: Holdings | None = None):
        chars = "".join(chr(0x100 + i) for i in range(cfg.vocab_size))  # a stand-in tokenizer of this size
        module = GPTLitModule(
            model=asdict(cfg), tokenizer={"kind": "char", "chars": chars}, optim={"warmup_steps": 0, "lr": 1e-4}
        )
        trainer = L.Trainer(
            accelerator=device, devices=1, precision=precision, max_steps=steps, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            limit_val_batches=0, num_sanity_val_steps=0, callbacks=[holdings] if holdings else [],
        )  # fmt: skip
        trainer.fit(module, train_dataloaders=DataLoader(Batches(b, t, cfg.vocab_size), batch_size=None))
        return module

    name, b, t, c, h, n_layer, v, attention, dropout, options = (spec.get(k, "") for k in KEYS)
    cfg = GPTConfig(vocab_size=v, block_size=t, n_layer=n_layer, n_head=h, n_embd=c, dropout=dropout,
                    bias=False, attention=attention, **model_options(options))  # fmt: skip
    # Warm-up: imports, thread pools, CUDA context and cuBLAS workspaces, all in place before the baseline.
    warm = fit(GPTConfig(vocab_size=65, block_size=16, n_layer=1, n_head=2, n_embd=32), 2, 16, 2)
    del warm
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
    baseline = current_memory(torch_device)
    reset_peak_memory(torch_device)
    holdings = Holdings()
    module = fit(cfg, b, t, 3, holdings)
    if device == "cuda":
        torch.cuda.synchronize()
    peak = peak_memory(torch_device) - baseline
    model = module.model.to(torch_device)
    x = torch.randint(0, v, (b, t), device=torch_device)
    saved = saved_activation_bytes(model, x, x, device=device, precision=precision)
    est = memory_estimate(cfg, b, t, precision=precision, device=device)
    return {
        **spec,
        "params": cfg.num_params(),
        "estimate": est.to_dict(),
        "held": holdings.held,
        "saved_activations": saved,
        "peak": peak,
    }


MiB = 1024 * 1024


def table(rows: list[dict], *, device: str) -> str:
    measured = "CUDA allocator peak" if device == "cuda" else "peak RSS growth"
    head = (
        "| config | batch | block | n_embd | layers | attention, options | parameters | W+G+AdamW est. / held (MiB) | "
        f"activations est. / saved (MiB) | est. peak (MiB) | {measured} (MiB) | est. / measured |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        e, held = r["estimate"], r["held"]
        states = e["weights"] + e["gradients"] + e["optimizer"]
        held_sum = held["weights"] + held["gradients"] + held["optimizer"]
        match = "=" if states == held_sum else "≠"
        lines.append(
            f"| {r['name']} | {r['batch']} | {r['block']} | {r['n_embd']} | {r['n_layer']} | {r['attention']}"
            f"{', dropout ' + str(r['dropout']) if r['dropout'] else ''}"
            f"{', ' + r['options'] if r.get('options') else ''} | {r['params']:,} | "
            f"{states / MiB:.2f} {match} {held_sum / MiB:.2f} | "
            f"{e['activations'] / MiB:.2f} / {r['saved_activations'] / MiB:.2f} | {e['total'] / MiB:.1f} | "
            f"{r['peak'] / MiB:.1f} | {e['total'] / r['peak']:.2f} |"
        )
    return "\n".join(lines)


def run_config(spec: dict, *, glibc_default: bool = False, timeout: float | None = None) -> tuple[dict | None, str]:
    """Measure one configuration in a fresh subprocess: (its result row, "") or (None, why it failed)."""
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    if not glibc_default and spec["device"] == "cpu":
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"  # large blocks mmapped and returned on free: RSS ~ live tensors
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        return None, proc.stderr[-2000:]
    return json.loads(line[len("RESULT ") :]), ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--sizes", choices=("cpu", "gpu"), default=None, help="default: cpu on cpu, gpu on cuda")
    parser.add_argument("--only", default=None, help="run just the configs whose name contains this")
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument(
        "--glibc-default",
        action="store_true",
        help="keep glibc's dynamic mmap threshold (RSS then also holds freed memory the heap keeps)",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))))
        return
    sizes = load_sizes(args.sizes or ("gpu" if args.device == "cuda" else "cpu"))
    rows = []
    for values in sizes:
        spec = {**dict(zip(KEYS, values)), "device": args.device, "precision": args.precision}
        if args.only and args.only not in spec["name"]:
            continue
        row, error = run_config(spec, glibc_default=args.glibc_default)
        if row is None:
            print(f"{spec['name']}: failed\n{error}", file=sys.stderr)
            continue
        rows.append(row)
        print(f"done: {spec['name']}", file=sys.stderr)
    malloc = "" if args.device == "cuda" or args.glibc_default else ", MALLOC_MMAP_THRESHOLD_=65536"
    print(f"device {args.device}, precision {args.precision}{malloc}\n")
    print(table(rows, device=args.device))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
