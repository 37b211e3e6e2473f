"""What a training run will cost, from its composed config alone: parameters, FLOPs and memory.

Nothing is loaded or allocated: the vocabulary size comes from a hint (see `vocab_size`); parameters and
FLOPs are counted on the module built on the meta device (models/sizing.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields, replace

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from errors import ConfigError
from models import memory, sizing
from models.gpt import GPTConfig
from training.checks import build_model_config, check_block_sizes

# Vocabulary sizes of the tokenizers data configs name (char: Tiny Shakespeare's 65 characters).
KNOWN_VOCAB = {"char": 65, "gpt2": 50257, "r50k_base": 50257, "p50k_base": 50281, "cl100k_base": 100277}


def vocab_size(cfg: DictConfig) -> tuple[int, str]:
    """(size, where it came from): `vocab_size=`, else the model config's own vocab_size, else the known
    size of data.tokenizer (what train.py would get from the data)."""
    if cfg.get("vocab_size"):
        return int(cfg.vocab_size), "vocab_size="
    if "vocab_size" in cfg.model:
        return int(cfg.model.vocab_size), "the model config"
    tokenizer = str(cfg.data.get("tokenizer", ""))
    if tokenizer in KNOWN_VOCAB:
        return KNOWN_VOCAB[tokenizer], f"data.tokenizer={tokenizer}"
    raise ConfigError(
        f"the vocabulary size of data.tokenizer={tokenizer!r} is unknown without loading the data: "
        f"pass it as vocab_size=<n>"
    )


def device_kind(cfg: DictConfig) -> str:
    """'cuda' when train.py would train on a GPU, else 'cpu' (dropout masks differ)."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


@dataclass
class Estimate:
    model: GPTConfig
    batch_size: int
    seq_len: int
    accumulate: int
    devices: int
    precision: str
    device: str
    max_steps: int
    vocab_source: str = ""

    @property
    def counts(self) -> dict[str, int]:
        return sizing.param_counts(self.model)

    @property
    def params(self) -> int:
        return self.model.num_params()

    @property
    def tokens_per_step(self) -> int:
        """Tokens per optimizer step over all devices."""
        return self.batch_size * self.seq_len * self.accumulate * self.devices

    @property
    def flops_per_token(self) -> int:
        return self.model.flops_per_token(self.seq_len)

    @property
    def memory(self) -> memory.MemoryEstimate:
        return memory.memory_estimate(
            self.model, self.batch_size, self.seq_len, precision=self.precision, device=self.device
        )


def build_estimate(cfg: DictConfig) -> Estimate:
    model_cfg = build_model_config(cfg)
    if not isinstance(model_cfg, GPTConfig):
        raise ConfigError(
            f"estimate.py sizes GPT models; model._target_={cfg.model.get('_target_')} is not a GPTConfig"
        )
    vocab, source = vocab_size(cfg)
    model_cfg = replace(model_cfg, vocab_size=vocab)  # validated again
    seq_len = int(cfg.data.block_size)
    check_block_sizes(model_cfg, seq_len)
    devices = cfg.trainer.get("devices", 1)
    return Estimate(
        model=model_cfg,
        batch_size=int(cfg.data.batch_size),
        seq_len=seq_len,
        accumulate=int(cfg.trainer.get("accumulate_grad_batches", 1) or 1),
        devices=int(devices) if str(devices).isdigit() else 1,
        precision=str(cfg.trainer.get("precision", "32-true")),
        device=device_kind(cfg),
        max_steps=int(cfg.trainer.get("max_steps", 0) or 0),
        vocab_source=source,
    )


def _n(x: int) -> str:
    return f"{x:,}"


def print_estimate(est: Estimate, *, breakdown: bool = False, console: Console | None = None) -> None:
    console = console or Console(width=None if sys.stdout.isatty() else 120)
    m = est.model
    console.print(
        f"[bold]{m.name}[/]: {m.n_layer} layers, {m.n_head} heads, n_embd {m.n_embd} (head dim {m.head_dim}), "
        f"vocab {m.vocab_size} (from {est.vocab_source}), context {m.block_size}, bias={m.bias}, "
        f"attention={m.attention}, dropout={m.dropout}"
    )
    shown = {"name", "n_layer", "n_head", "n_embd", "vocab_size", "block_size", "bias", "attention", "dropout"}
    changed = [f.name for f in fields(m) if f.name not in shown and getattr(m, f.name) != f.default]  # the options set
    options = [f"{name}={getattr(m, name)}" for name in changed]
    if options:
        console.print(f"options: {', '.join(options)}")
    console.print(
        f"batch {est.batch_size} x block {est.seq_len}, accumulate {est.accumulate}, devices {est.devices}, "
        f"precision {est.precision} on {est.device}"
    )

    table = Table(title="Parameters per component")
    table.add_column("component")
    table.add_column("parameters", justify="right")
    table.add_column("share", justify="right")
    for key, count in est.counts.items():
        if count or key != "other":
            table.add_row(sizing.COMPONENTS[key], _n(count), f"{100 * count / est.params:.2f}%")
    table.add_row("[bold]total[/]", f"[bold]{_n(est.params)}[/]", f"{sizing.human_count(est.params)}", end_section=True)
    table.caption = "counted on the module built on the meta device (no memory)"
    console.print(table)

    if breakdown:
        console.print(breakdown_table(m))

    fpt = est.flops_per_token
    flops = Table(title="Training FLOPs (forward + backward)")
    flops.add_column("quantity")
    flops.add_column("value", justify="right")
    n = sizing.matmul_params(m)
    flops.add_row("6·N (N = parameters in matmuls)", f"{6 * n:,}")
    flops.add_row(f"12·L·T·C (attention, T = {est.seq_len})", f"{fpt - 6 * n:,}")
    flops.add_row("per token", f"{fpt:,} ({sizing.human_count(fpt)})")
    flops.add_row("tokens per optimizer step", _n(est.tokens_per_step))
    flops.add_row("per optimizer step", f"{fpt * est.tokens_per_step:.3e}")
    if est.max_steps > 0:
        flops.add_row(f"whole run ({est.max_steps} steps)", f"{fpt * est.tokens_per_step * est.max_steps:.3e}")
    console.print(flops)
    console.print(memory_table(est))


def breakdown_table(m: GPTConfig) -> Table:
    rows = sizing.matrix_breakdown(m)
    total = sum(r.total for r in rows)
    table = Table(title=f"Parameters per matrix ({m.name})")
    for col, justify in (("matrix", "left"), ("shape", "left"), ("per layer", "right"), ("layers", "right")):
        table.add_column(col, justify=justify)
    table.add_column("total", justify="right")
    table.add_column("share", justify="right")
    for r in rows:
        table.add_row(r.name, r.shape, _n(r.per_layer), str(r.layers), _n(r.total), f"{100 * r.total / total:.2f}%")
    table.add_row("[bold]total[/]", "", "", "", f"[bold]{_n(total)}[/]", sizing.human_count(total))
    return table


def memory_table(est: Estimate) -> Table:
    mem = est.memory
    hb = memory.human_bytes
    table = Table(title=f"Memory per device, one training step ({est.precision}, attention={est.model.attention})")
    table.add_column("part")
    table.add_column("bytes", justify="right")
    table.add_column("", justify="right")
    rows = [
        ("weights", mem.weights),
        ("gradients", mem.gradients),
        ("AdamW states (exp_avg, exp_avg_sq, step)", mem.optimizer),
        ("activations saved for backward", mem.activations),
    ]
    if mem.weight_copies:
        rows.append(("low-precision weight copies (autocast)", mem.weight_copies))
    rows.append(("gradients in flight early in backward", mem.backward_buffers))
    for name, value in rows:
        table.add_row(name, _n(value), hb(value))
    table.add_row("[bold]total (estimated peak)[/]", f"[bold]{_n(mem.total)}[/]", f"[bold]{hb(mem.total)}[/]")
    table.add_row(
        "textbook 4·R·N²·D² + R·B·N·S·(S+2D)", _n(mem.textbook), f"{hb(mem.textbook)} ({mem.textbook / mem.total:.0%})"
    )
    table.caption = (
        "peak = weights + AdamW states + max(activations + weight copies + gradients in flight, gradients); "
        "the textbook formula counts only attention weights and attention activations"
    )
    return table
