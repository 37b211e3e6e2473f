"""The GPU benchmark's training parts: char (nanoGPT's char recipe and the project's, side by side), speedrun
(time to val <= 1.47) and gpt2 (GPT-2 124M against nanoGPT: tokens/s and MFU). docs/measurement.md explains them."""

from __future__ import annotations

import sys

from bench.gpu_runs import mfu, parse_nanogpt, parse_project
from bench.harness import QUIET, ROOT, TINY_GPT, TINY_NANOGPT, Bench
from bench.tables import fmt, ratio, side_table

TARGET = 1.47
SPEEDRUN_VARIANTS = {  # the recipe runs without compile: on an H200 compiling cost ~21 s it never earned back
    "recipe": [],
    "muon": ["ablation=muon"],  # conf/ablation/muon.yaml: Muon at the study's muon_lr
    "winners": ["ablation=winners"],  # the CPU study's winners: Muon, RoPE, ReLU², QK-norm
    "winners compiled": ["ablation=winners", "compile=true"],  # their many small kernels fused (per block)
    "compile blocks": ["compile=true"],
    "whole-model compile": ["compile=true", "module.compile_scope=model"],
    "batch 128, lr 2e-3": ["data.batch_size=128", "optim.lr=2e-3"],
}


def peak(bench: Bench) -> float | None:
    """The dense bf16 peak FLOP/s of this device (lightning_modules/hardware.py), or --peak-tflops."""
    if bench.args.peak_tflops:
        return bench.args.peak_tflops * 1e12
    import torch

    from lightning_modules.hardware import peak_flops

    return peak_flops(torch.device("cuda", 0), torch.bfloat16) if bench.device["cuda"] else None


def bare_loop(bench: Bench, part: str, shape: str, steps: int) -> dict:
    """bench/bare_loop.py: the project's model in a plain PyTorch loop (no Lightning), parsed like nanoGPT's log."""
    if bench.left() < 60:
        return {"status": "skipped: budget"}
    cmd = [sys.executable, str(ROOT / "bench" / "bare_loop.py"), shape, f"--steps={steps}"]
    proc = bench.run(
        part,
        f"project model, plain loop ({shape})",
        [*cmd, *(["--smoke", "--log-interval=1"] if bench.smoke else [])],
        240,
    )
    record = parse_nanogpt(proc.lines, eval_interval=10**9, target=0.0)
    return {**record, "status": proc.status, "wall": proc.wall}


def extra_rows(bench: Bench, part: str, base: list[str], extras: list[str] | None, target: float | None) -> dict:
    """Project runs of the base overrides plus each "overrides ..." string (--char-extra, --gpt2-extra), named
    `project <overrides>` (an empty string: the base itself, `project`), while the budget lasts."""
    sides = {}
    for extra in extras or []:
        name = f"project {extra}".strip()
        if bench.left() < 60:
            sides[name] = {"status": "skipped: budget"}
            continue
        ov = [*base, *extra.split()]
        proc, run_dir = bench.train(part, name, ov, cap=240)
        sides[name] = {
            **parse_project(run_dir, target=target),
            "wall": proc.wall,
            "status": proc.status,
            "overrides": ov,
        }
    return sides


def variant_lines(reference: dict, sides: dict) -> str:
    """One line per extra row: its ms/step and tokens/s against the reference side's (nanoGPT)."""
    lines = []
    for name, s in sides.items():
        ms, ref = s.get("ms_per_step"), reference.get("ms_per_step")
        vs = f" ({ratio(ref, ms)} nanoGPT's tokens/s)" if ms and ref else ""
        lines.append(
            f"\n- {name}: {s.get('status')}, {fmt(ms, 2)} ms/step, {fmt(s.get('tokens_per_sec'))} tokens/s{vs}"
        )
    return "".join(lines)


def part_char(bench: Bench) -> None:
    steps = 8 if bench.smoke else bench.args.char_steps or (2000 if bench.several else 5000)
    target = 10.0 if bench.smoke else TARGET  # a tiny model never reaches 1.47: any loss passes in --smoke
    if bench.smoke:
        flags = [*TINY_NANOGPT, f"--max_iters={steps}", f"--lr_decay_iters={steps}", "--eval_interval=4"]
        nano = bench.nanogpt("char", "cpu", flags, cap=120)
        eval_interval = 4
        overrides = [
            "experiment=nanogpt_shakespeare_char",
            *TINY_GPT,
            "trainer.val_check_interval=4",
            "trainer.limit_val_batches=2",
            "trainer.log_every_n_steps=1",
            "compile=false",
        ]
    else:
        nano = bench.nanogpt("char", "char", [f"--max_iters={steps}"], cap=300)  # lr still decays over 5000
        eval_interval = 250
        overrides = ["experiment=nanogpt_shakespeare_char", "optim.decay_steps=5000"]
    base = [*overrides, *QUIET, f"trainer.max_steps={steps}"]
    proj, run_dir = bench.train("char", "project char", base, cap=300)
    n = parse_nanogpt(nano.lines, eval_interval=eval_interval, target=target) if nano else {}
    p = parse_project(run_dir, target=target)
    more = {"project model, plain loop (bench/bare_loop.py)": bare_loop(bench, "char", "char", steps)}
    more.update(extra_rows(bench, "char", base, bench.args.char_extra, target))
    n["wall"], p["wall"] = (nano.wall if nano else None), proj.wall
    n["status"], p["status"] = (nano.status if nano else "anchors missing"), proj.status
    rows = [
        ("steps run", "int", n.get("steps"), p.get("steps"), False),
        ("whole run, wall (s)", "s", n.get("wall"), p.get("wall"), True),
        ("ms per training step (median, validation excluded)", "ms", n.get("ms_per_step"), p["ms_per_step"], True),
        ("tokens/s", "int", n.get("tokens_per_sec"), p["tokens_per_sec"], True),
        ("best val loss", "loss", n.get("best_val"), p["best_val"], False),
        ("... at step", "int", n.get("best_val_step"), p["best_val_step"], False),
        (f"first val <= {target}: at step", "int", n.get("target_step"), p["target_step"], False),
        (f"first val <= {target}: wall time since launch (s)", "s", n.get("time_to_target"), p["time_to_target"], True),
    ]
    note = (
        f"\n\nnanoGPT: {n.get('status')}; project: {p['status']}. nanoGPT's own per-step time (host clock "
        f"before its sync): {fmt(n.get('ms_per_step_nanogpt'), 2)} ms. Both sides: same recipe, {steps} steps, "
        f"LR decaying over {steps if bench.smoke else 5000}; validation every {eval_interval} steps (nanoGPT: "
        f"{2 if bench.smoke else 200} random batches of train "
        f"and val; project: the whole val split).\n\nMore rows (the plain loop: the project's model without "
        f"Lightning, no validation):" + variant_lines(n, more)
    )
    table = side_table(rows, ("nanoGPT", "project")) + note
    bench.save("char", {"steps": steps, "target": target, "nanogpt": n, "project": p, "more": more}, table)


def part_speedrun(bench: Bench) -> None:
    variants = bench.args.speedrun_variants or (["recipe"] if bench.smoke else ["recipe", "muon"])
    records, lines = (
        {},
        [
            "| variant | reached | time since launch to val <= target (s) | at step | val | launch to "
            "fit start (s) | process wall (s) |",
            "|---|---|---:|---:|---:|---:|---:|",
        ],
    )
    for name in variants:
        extra = SPEEDRUN_VARIANTS[name]
        if bench.smoke:
            extra = [
                *extra,
                *TINY_GPT,
                "data.val_batch_size=null",
                "trainer.max_steps=8",
                "compile=false",
                "trainer.val_check_interval=2",
                "trainer.limit_val_batches=2",
                "callbacks.target.target=10",
            ]
        if bench.left() < 45:
            records[name] = {"status": "skipped: budget"}
            continue
        proc, run_dir = bench.train(
            "speedrun", f"speedrun {name}", ["experiment=shakespeare_char_speedrun", *extra], cap=120
        )
        p = parse_project(run_dir, target=10.0 if bench.smoke else TARGET)
        tj = p["target_json"] or {}
        records[name] = {**p, "status": proc.status, "wall": proc.wall, "overrides": extra}
        lines.append(
            f"| {name} | {tj.get('reached', '-')} | {fmt(tj.get('elapsed_since_launch'), 2)} | {tj.get('step', '-')} "
            f"| {fmt(tj.get('value') or tj.get('best'), 4)} | {fmt(p['launch_to_fit_start'], 1)} | {fmt(proc.wall)} |"
        )
    bench.save("speedrun", {"variants": records}, "\n".join(lines))


def part_gpt2(bench: Bench) -> None:
    if bench.smoke:
        nano = bench.nanogpt(
            "gpt2", "gpt2", [*TINY_NANOGPT, "--batch_size=2", "--max_iters=6", "--lr_decay_iters=6"], cap=120
        )
        sizes = [
            *TINY_GPT,
            "data.batch_size=2",
            "trainer.max_steps=6",
            "trainer.log_every_n_steps=1",
            "compile=false",
            "trainer.limit_val_batches=2",
        ]
    else:
        nano = bench.nanogpt("gpt2", "gpt2", [], cap=240)
        sizes = ["data.batch_size=16", "data.block_size=1024", "trainer.max_steps=300"]
    # nanoGPT's recipe and shapes: bias-free, no dropout, the vocabulary padded to 50304 rows, lr 6e-4 -> 6e-5,
    # warmup 20, beta2 0.95, one validation at the end (`--gpt2-extra model.vocab_multiple=1`: unpadded)
    overrides = [
        "model=gpt2",
        "data=shakespeare_bpe",
        "model.bias=false",
        "model.vocab_multiple=64",
        "model.dropout=0.0",
        "optim.lr=6e-4",
        "optim.min_lr=6e-5",
        "optim.warmup_steps=20",
        "optim.beta2=0.95",
        "optim.weight_decay=0.1",
        "trainer.val_check_interval=${trainer.max_steps}",
        "trainer.num_sanity_val_steps=0",
        "callbacks.model_checkpoint=null",
        "++trainer.enable_checkpointing=false",
        *QUIET,
        *sizes,
    ]
    bare_steps = 6 if bench.smoke else 300
    n = parse_nanogpt(nano.lines, eval_interval=1000, target=0.0) if nano else {}
    peak_flops = peak(bench)
    n_cfg = nanogpt_gpt2_config(smoke=bench.smoke)
    from models.sizing import flops_per_token

    n["flops_per_token"] = flops_per_token(n_cfg, n_cfg.block_size)
    n["mfu"] = mfu(n.get("tokens_per_sec"), n["flops_per_token"], peak_flops)
    n["wall"], n["status"] = (nano.wall, nano.status) if nano else (None, "anchors missing")
    sides = {"nanogpt": n}
    for name, p in extra_rows(bench, "gpt2", overrides, ["", *(bench.args.gpt2_extra or [])], None).items():
        if "tokens_per_sec" in p:  # not a row the budget skipped
            p["mfu"] = mfu(p["tokens_per_sec"], p["flops_per_token"], peak_flops)
        sides[name] = p
    bare = bare_loop(bench, "gpt2", "gpt2", bare_steps)
    bare["flops_per_token"] = n["flops_per_token"]  # the same shapes as nanoGPT's (vocabulary 50304)
    bare["mfu"] = mfu(bare.get("tokens_per_sec"), bare["flops_per_token"], peak_flops)
    sides["project model, plain loop"] = bare
    lines = [
        "| side | status | ms/step | tokens/s | FLOPs/token (6N + 12·L·T·C) | MFU | MFU (Measure) | wall (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in sides.items():
        lines.append(
            f"| {name} | {s.get('status')} | {fmt(s.get('ms_per_step'), 2)} | {fmt(s.get('tokens_per_sec'))} | "
            f"{fmt(s.get('flops_per_token'))} | {fmt(s.get('mfu'), pct=True)} | {fmt(s.get('mfu_measure'), pct=True)} "
            f"| {fmt(s.get('wall'))} |"
        )
    lines.append(
        f"\nMFU = tokens/s x FLOPs per token / {fmt(peak_flops and peak_flops / 1e12)} TFLOP/s (dense bf16 "
        "peak), both sides counted by models/sizing.flops_per_token on their own configuration (both pad the "
        "vocabulary to 50304 rows unless a row says otherwise). ms/step: median between logged steps, first "
        "interval (compile) "
        "and validation excluded."
    )
    bench.save("gpt2", {"peak_flops": peak_flops, "sides": sides}, "\n".join(lines))


def nanogpt_gpt2_config(*, smoke: bool):
    from models.gpt import GPTConfig

    if smoke:
        return GPTConfig(vocab_size=50304, block_size=32, n_layer=1, n_head=2, n_embd=32, bias=False)
    return GPTConfig(vocab_size=50304, block_size=1024, n_layer=12, n_head=12, n_embd=768, bias=False)
