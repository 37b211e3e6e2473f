"""The GPU benchmark: the project against nanoGPT side by side, the speed recipe, kernels, memory, translation.

    python3 bench/gpu.py all --budget-s 540 --out $OUT       # one device call: char, speedrun, gpt2, kernels
    python3 bench/gpu.py translate --budget-s 540 --out $OUT # the Multi30k recipe, trained and scored
    python3 bench/gpu.py char [gpt2 ...] [--char-steps 5000]  # single parts (each under 8 minutes on an H100)
    python  bench/gpu.py all translate --smoke                # every part on CPU at tiny sizes (the tests run this)

Parts (each writes bench/results/gpu_<device>_<part>.json and .md; docs/measurement.md explains them):
  char      nanoGPT's char recipe ($ANCHORS/run-nanogpt.sh char), then the project's
            experiment=nanogpt_shakespeare_char, back to back: wall time, ms/step (validation excluded),
            tokens/s, best val and its step, time from launch to the first val <= 1.47.
  speedrun  experiment=shakespeare_char_speedrun and variants of it: time from launch to val <= 1.47.
  gpt2      nanoGPT's GPT-2 124M recipe (block 1024, batch 16, 300 steps) and the project's model=gpt2
            data=shakespeare_bpe at the same sizes: tokens/s and MFU = tokens/s x (6N + 12·L·T·C) / peak.
  kernels   model.attention=sdpa|flash|math forward+backward at block 256, 1024, 4096 with the CUDA kernels
            the profiler saw; the memory estimate against torch.cuda.max_memory_allocated (bench/memory_check.py).
  translate experiment=translate_multi30k: time, steps, tokens/s, the val loss and BLEU curve, test2016
            sacreBLEU with greedy and beam search from the averaged checkpoint, decoding time per sentence.
With --budget-s the parts run in order while time is left; a part's processes are stopped at the budget
and what they printed so far is kept. --out also gets every result and a tarball of the logs (unpack it in
the repository root: it restores bench/results/ and bench/work/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import gpu_runs  # noqa: E402
from bench.gpu_runs import launch, mfu, parse_nanogpt, parse_project  # noqa: E402

PARTS = ("char", "speedrun", "gpt2", "kernels", "translate")
ALL = ("char", "speedrun", "gpt2", "kernels")  # one device call; translate needs a call of its own
TARGET = 1.47
# Extra train.py overrides for side-by-side runs: nothing nanoGPT does not do (no samples, no generation
# metrics, no W&B start), CSV metrics only.
QUIET = ["logger=csv", "callbacks.samples=null", "callbacks.generation=null", "cpu_time_check=false"]
SPEEDRUN_VARIANTS = {
    "recipe": [],
    "no compile": ["compile=false"],
    "whole-model compile": ["module.compile_scope=model"],
    "batch 128, lr 2e-3": ["data.batch_size=128", "optim.lr=2e-3"],
}
# Tiny sizes for --smoke (CPU, seconds per run).
TINY_GPT = ["model.n_layer=1", "model.n_head=2", "model.n_embd=32", "data.batch_size=4", "data.block_size=32"]
TINY_NANOGPT = [
    "--device=cpu",
    "--compile=False",
    "--dtype=float32",
    "--n_layer=1",
    "--n_head=2",
    "--n_embd=32",
    "--block_size=32",
    "--batch_size=4",
    "--log_interval=1",
    "--eval_iters=2",
    "--warmup_iters=1",
]


class Bench:
    """Where results go, how much time is left, and what every part shares (device, paths, launches)."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.smoke = args, args.smoke
        self.several = False  # more than one part in this call (char then runs 2000 of its 5000 steps)
        self.start = time.time()
        self.deadline = self.start + args.budget_s if args.budget_s else None
        self.device = device_info()
        self.slug = self.device["slug"]
        self.results = Path(args.results)
        self.work = Path(args.work) / self.slug
        self.out = Path(args.out) if args.out else None
        self.env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.env.setdefault("WANDB_MODE", "offline")
        if self.smoke:
            self.env.setdefault("OMP_NUM_THREADS", "1")

    # -- time
    def left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.time()

    def timeout(self, cap: float) -> float:
        """Seconds a launch may take: its cap, or what is left of the budget (less a margin to write results)."""
        return max(1.0, min(cap, self.left() - 10))

    # -- runs
    def run(self, part: str, name: str, cmd: list, cap: float) -> gpu_runs.Launch:
        slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        # Every launch compiles cold: its own empty inductor and Triton caches, so no run reuses kernels an
        # earlier one compiled (the project after nanoGPT, a speed-run variant after another).
        cache = self.work / part / f"compile_cache_{slug}"
        shutil.rmtree(cache, ignore_errors=True)
        env = {
            **self.env,
            "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
            "TRITON_CACHE_DIR": str(cache / "triton"),
        }
        log = self.work / part / f"{slug}.log"
        result = launch(name, cmd, env=env, cwd=ROOT, log=log, timeout=self.timeout(cap))
        shutil.rmtree(cache, ignore_errors=True)
        say(f"  {name}: {result.status}, {result.wall:.1f} s wall")
        if result.returncode != 0 or result.timed_out:
            say("    " + result.tail(15).replace("\n", "\n    "))
        return result

    def train(self, part: str, name: str, overrides: list[str], cap: float) -> tuple[gpu_runs.Launch, Path]:
        slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        run_dir = self.work / part / f"run_{slug}"
        shutil.rmtree(run_dir, ignore_errors=True)
        cmd = [sys.executable, "train.py", *overrides, f"hydra.run.dir={run_dir}"]
        return self.run(part, name, cmd, cap), run_dir

    def nanogpt(self, part: str, recipe: str, flags: list[str], cap: float) -> gpu_runs.Launch | None:
        found = anchors(self.args.anchors)
        if found is None:
            if not self.smoke:
                say("  nanoGPT: anchors not found ($ANCHORS, .gpuanchors or ../shared/anchors): side skipped")
                return None
            # --smoke without the anchors: a stand-in that prints nanoGPT's log format (tests the parser only)
            return self.run(part, "nanoGPT (stand-in)", [sys.executable, __file__, "--fake-nanogpt", *flags], cap)
        return self.run(part, f"nanoGPT {recipe}", ["bash", str(found / "run-nanogpt.sh"), recipe, *flags], cap)

    # -- results
    def save(self, part: str, record: dict, table: str) -> None:
        record = {"part": part, "smoke": self.smoke, **self.device, "bench_seconds": time.time() - self.start, **record}
        self.results.mkdir(parents=True, exist_ok=True)
        stem = f"gpu_{self.slug}_{part}"
        header = (
            f"### {part}: {self.device['name']}, torch {self.device['torch']}, lightning "
            f"{self.device['lightning']}{' (smoke: tiny sizes, numbers mean nothing)' if self.smoke else ''}\n\n"
        )
        (self.results / f"{stem}.json").write_text(json.dumps(record, indent=2, default=str))
        (self.results / f"{stem}.md").write_text(header + table + "\n")
        say("\n" + header + table + "\n")
        if self.out:
            self.out.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.results / f"{stem}.json", self.out / f"{stem}.json")
            self.bundle()

    def bundle(self) -> None:
        """$OUT/gpu_<device>_bundle.tar.gz (every result, log and small run file) and summary.md: the
        device call returns at most 8 files, so the rest travels packed."""
        assert self.out is not None
        mds = sorted(self.results.glob(f"gpu_{self.slug}_*.md"))
        (self.out / f"gpu_{self.slug}_summary.md").write_text("\n".join(p.read_text() for p in mds))
        with tarfile.open(self.out / f"gpu_{self.slug}_bundle.tar.gz", "w:gz") as tar:
            for p in sorted(self.results.glob(f"gpu_{self.slug}_*")):
                tar.add(p, arcname=str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else p.name)
            for p in sorted(self.work.rglob("*")):
                if p.is_file() and p.suffix in (".log", ".csv", ".json", ".yaml", ".txt") and p.stat().st_size < 4e6:
                    tar.add(p, arcname=str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p))


def say(text: str) -> None:
    print(text, flush=True)


def anchors(given: str | None = None) -> Path | None:
    """The folder holding run-nanogpt.sh: --anchors, $ANCHORS, .gpuanchors/ (device runs) or ../shared/anchors."""
    if given:
        return Path(given) if (Path(given) / "run-nanogpt.sh").is_file() else None
    for candidate in (os.environ.get("ANCHORS"), ROOT / ".gpuanchors", ROOT.parent / "shared" / "anchors"):
        if candidate and (Path(candidate) / "run-nanogpt.sh").is_file():
            return Path(candidate)
    return None


def device_info() -> dict:
    import lightning
    import torch

    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if cuda else f"cpu ({platform.processor() or platform.machine()})"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") if cuda else "cpu"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        commit = commit.stdout.strip() or None
    except OSError:
        commit = None
    smi = shutil.which("nvidia-smi")  # driver, clocks and power limit as found (never changed)
    if smi:
        query = "name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit"
        smi = subprocess.run([smi, f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True, text=True)
        smi = smi.stdout.strip() or None
    return {
        "nvidia_smi": smi,
        "name": name,
        "slug": slug,
        "cuda": cuda,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "cuda_version": torch.version.cuda,
        "python": platform.python_version(),
        "commit": commit,
    }


def peak(bench: Bench) -> float | None:
    """The dense bf16 peak FLOP/s of this device (lightning_modules/hardware.py), or --peak-tflops."""
    if bench.args.peak_tflops:
        return bench.args.peak_tflops * 1e12
    import torch

    from lightning_modules.hardware import peak_flops

    return peak_flops(torch.device("cuda", 0), torch.bfloat16) if bench.device["cuda"] else None


# ---------------------------------------------------------------------------------------------------------
# Tables


def fmt(value, digits: int = 1, *, pct: bool = False) -> str:
    """A number for a table: '-' when missing, thousands separated from 10,000 up, or a percentage."""
    if value is None:
        return "-"
    if pct:
        return f"{100 * value:.1f}%"
    if isinstance(value, int) or abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


DIGITS = {"int": 0, "loss": 4, "s": 1, "ms": 2}


def ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def side_table(rows: list[tuple[str, str, object, object, bool]], names: tuple[str, str]) -> str:
    """| metric | A | B | B / A |: each row (label, format, a, b, show_ratio)."""
    lines = [f"| metric | {names[0]} | {names[1]} | {names[1]} / {names[0]} |", "|---|---:|---:|---:|"]
    for label, kind, a, b, show in rows:
        fa, fb = (fmt(v, DIGITS.get(kind, 1), pct=kind == "pct") for v in (a, b))
        lines.append(f"| {label} | {fa} | {fb} | {ratio(b, a) if show else ''} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Parts


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
    proj, run_dir = bench.train("char", "project char", [*overrides, *QUIET, f"trainer.max_steps={steps}"], cap=300)
    n = parse_nanogpt(nano.lines, eval_interval=eval_interval, target=target) if nano else {}
    p = parse_project(run_dir, target=target)
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
        f"and val; project: the whole val split)."
    )
    table = side_table(rows, ("nanoGPT", "project")) + note
    bench.save("char", {"steps": steps, "target": target, "nanogpt": n, "project": p}, table)


def part_speedrun(bench: Bench) -> None:
    variants = bench.args.speedrun_variants or (["recipe"] if bench.smoke else ["recipe", "no compile"])
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
    variants = {"project": overrides}
    for extra in bench.args.gpt2_extra or []:
        variants[f"project {extra}"] = [*overrides, *extra.split()]
    n = parse_nanogpt(nano.lines, eval_interval=1000, target=0.0) if nano else {}
    peak_flops = peak(bench)
    n_cfg = nanogpt_gpt2_config(smoke=bench.smoke)
    from models.sizing import flops_per_token

    n["flops_per_token"] = flops_per_token(n_cfg, n_cfg.block_size)
    n["mfu"] = mfu(n.get("tokens_per_sec"), n["flops_per_token"], peak_flops)
    n["wall"], n["status"] = (nano.wall, nano.status) if nano else (None, "anchors missing")
    sides = {"nanogpt": n}
    for name, ov in variants.items():
        if bench.left() < 60:
            sides[name] = {"status": "skipped: budget"}
            continue
        proc, run_dir = bench.train("gpt2", name, ov, cap=240)
        p = parse_project(run_dir)
        p["mfu"] = mfu(p["tokens_per_sec"], p["flops_per_token"], peak_flops)
        sides[name] = {**p, "wall": proc.wall, "status": proc.status, "overrides": ov}
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
            "| block | batch | model.attention | sdpa kernel | ms fwd+bwd | tokens/s | kernels the profiler saw |",
            "|---:|---:|---|---|---:|---:|---|",
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
                f"| {block} | {batch} | {name} | {pin} | {r.get('ms/step', '-')} | {fmt(r.get('tokens/s'))} | {shown} |"
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


def part_translate(bench: Bench) -> None:
    data = Path(os.environ.get("DATA_DIR", ROOT / "data")) / "multi30k"
    work = bench.work / "translate"
    if bench.smoke:
        overrides = [
            "model.n_enc_layer=1",
            "model.n_dec_layer=1",
            "model.n_embd=32",
            "model.n_head=2",
            "model.d_ff=64",
            "data.limit=64",
            "data.vocab_size=500",
            "data.max_tokens=512",
            "trainer.max_steps=4",
            "trainer.val_check_interval=2",
            "callbacks.averaging.last_n=2",
            "module.beam_size=2",
            "trainer.accelerator=cpu",
            "trainer.log_every_n_steps=1",
        ]
        n_test, beam = 16, 2
    else:
        overrides, n_test, beam = [], None, 5
    scoring = 60 if bench.smoke else 100  # seconds kept for the two test2016 decodes
    train_s = max(30.0, min(bench.args.translate_train_s, bench.left() - scoring - 20))
    max_time = time.strftime("00:%H:%M:%S", time.gmtime(train_s))
    proc, run_dir = bench.train(
        "translate",
        "project translate_multi30k",
        [
            "experiment=translate_multi30k",
            "logger=csv",
            "cpu_time_check=false",
            f"++trainer.max_time={max_time}",
            *overrides,
        ],
        cap=train_s + 120,
    )
    p = parse_project(run_dir)
    ckpts = run_dir / "checkpoints"
    ckpt = next((c for c in (ckpts / "averaged.ckpt", ckpts / "best.ckpt") if c.is_file()), None)
    src, ref = data / "test2016.de", data / "test2016.en"
    if n_test:  # the first sentences only
        src, ref = (take_lines(f, work / f.name, n_test) for f in (src, ref))
    scores = {}
    for label, beam_size, lp in (("greedy", 1, 1.0), (f"beam {beam}", beam, bench.args.length_penalty)):
        if ckpt is None or bench.left() < 20:
            scores[label] = {"status": "skipped: no checkpoint" if ckpt is None else "skipped: budget"}
            continue
        out = work / f"test_{beam_size}.json"
        cmd = [
            sys.executable,
            "translate.py",
            f"ckpt_path={ckpt}",
            f"input={src}",
            f"reference={ref}",
            f"output={work / f'test_hyps_beam{beam_size}.txt'}",
            f"score_json={out}",
            f"beam_size={beam_size}",
            f"length_penalty={lp}",
        ]
        run = bench.run("translate", f"translate.py {label}", cmd, cap=120)
        scores[label] = {**(gpu_runs.read_json(out) or {}), "status": run.status, "wall": run.wall}
    in_run = (run_dir / "test_bleu.txt").read_text().strip() if (run_dir / "test_bleu.txt").is_file() else None
    tokens = gpu_runs.column(gpu_runs.read_csv(run_dir / "csv" / "metrics.csv"), "train/tokens")
    target_tps = (
        (sum(v for _, v in tokens) / len(tokens) * 1000 / p["ms_per_step"]) if tokens and p["ms_per_step"] else None
    )
    lines = [
        f"- checkpoint scored: {ckpt.name if ckpt else 'none'}; training stopped by: "
        f"{'max_time ' + max_time if p['steps'] and p['steps'] < planned_steps(run_dir) else 'max_steps'}",
        f"- train.py wall from launch: {fmt(proc.wall)} s ({proc.status}); steps {p['steps']}; "
        f"{fmt(p['ms_per_step'], 2)} ms/step; {fmt(target_tps)} target tokens/s "
        f"({fmt(p['tokens_per_sec_measure'])} padded source tokens/s, Measure)",
        f"- bench wall so far: {fmt(time.time() - bench.start)} s (set-up, training, averaging, scoring)",
        f"- in-run test (best.ckpt, module.beam_size): {in_run.splitlines()[0] if in_run else '-'}",
        "",
        "| decoding | BLEU | signature | ms/sentence | sentences |",
        "|---|---:|---|---:|---:|",
    ]
    for label, s in scores.items():
        extra = f" (length_penalty {s.get('length_penalty')})" if s.get("beam_size", 1) > 1 else ""
        signature = str(s.get("signature", s.get("status"))).replace("|", "\\|")  # a Markdown cell
        lines.append(
            f"| {label}{extra} | {fmt(s.get('bleu'), 2)} | {signature} | "
            f"{fmt(s.get('ms_per_sentence'), 2)} | {s.get('sentences', '-')} |"
        )
    lines += ["", "| step | elapsed since launch (s) | val loss | val BLEU (greedy) |", "|---:|---:|---:|---:|"]
    lines += [
        f"| {c['step']} | {fmt(c['elapsed'])} | {fmt(c['val_loss'], 4)} | {fmt(c.get('val_bleu'), 2)} |"
        for c in p["val_curve"]
    ]
    record = {
        "train": {**p, "wall": proc.wall, "status": proc.status, "max_time": max_time},
        "target_tokens_per_sec": target_tps,
        "in_run_test": in_run,
        "test2016": scores,
    }
    bench.save("translate", record, "\n".join(lines))


def planned_steps(run_dir: Path) -> int:
    """trainer.max_steps of a run, from the config.yaml it wrote."""
    import yaml

    cfg = run_dir / "config.yaml"
    return int(yaml.safe_load(cfg.read_text())["trainer"]["max_steps"]) if cfg.is_file() else 0


def take_lines(path: Path, dest: Path, n: int) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8")
    return dest


# ---------------------------------------------------------------------------------------------------------


def fake_nanogpt(flags: list[str]) -> None:
    """A stand-in printing nanoGPT's log format (for --smoke where the anchors are missing)."""
    opts = dict(f[2:].split("=", 1) for f in flags if f.startswith("--") and "=" in f)
    steps, every = int(opts.get("max_iters", 8)), int(opts.get("eval_interval", 4))
    print(f"tokens per iteration will be: {int(opts.get('batch_size', 4)) * int(opts.get('block_size', 32)):,}")
    for it in range(steps + 1):
        if it % every == 0:
            print(f"step {it}: train loss {4.2 - it / 10:.4f}, val loss {4.25 - it / 10:.4f}")
        time.sleep(0.01)
        print(f"iter {it}: loss {4.2 - it / 10:.4f}, time 10.00ms, mfu -100.00%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)}, or all (= {' '.join(ALL)})")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device (what the tests run)")
    parser.add_argument("--budget-s", type=float, default=None, help="stop starting work after this many seconds")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"), help="where JSON + Markdown go")
    parser.add_argument("--work", default=str(ROOT / "bench" / "work"), help="run directories and logs")
    parser.add_argument("--out", default=None, help="also copy results and a tarball of logs here ($OUT)")
    parser.add_argument(
        "--char-steps", type=int, default=None, help="of both char runs (LR decays over 5000): 5000 alone, else 2000"
    )
    parser.add_argument("--memory-jobs", type=int, default=4, help="memory configurations measured at once (GPU)")
    parser.add_argument("--speedrun-variants", nargs="*", choices=list(SPEEDRUN_VARIANTS), default=None)
    parser.add_argument("--gpt2-extra", nargs="*", default=None, help='more project gpt2 runs: "overrides ..." each')
    parser.add_argument("--translate-train-s", type=float, default=420, help="training time cap of translate (s)")
    parser.add_argument("--length-penalty", type=float, default=1.0, help="of the beam-search test decode")
    parser.add_argument("--anchors", default=None, help="folder of run-nanogpt.sh (default: $ANCHORS, ...)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the device's dense bf16 peak")
    parser.add_argument("--fake-nanogpt", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fake_nanogpt is not None:
        fake_nanogpt(args.fake_nanogpt)
        return 0
    parts = [p for name in args.parts or ["all"] for p in (ALL if name == "all" else [name])]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)} or all")
    bench = Bench(args)
    bench.several = len(set(parts)) > 1
    say(
        f"# bench/gpu.py {' '.join(parts)} on {bench.device['name']} (torch {bench.device['torch']}), "
        f"budget {args.budget_s or 'none'} s{', smoke' if args.smoke else ''}"
    )
    failed = []
    for part in dict.fromkeys(parts):
        if bench.left() < 30:
            say(f"## {part}: skipped, {bench.left():.0f} s of budget left")
            continue
        say(f"## {part} ({bench.left():.0f} s of budget left)" if bench.deadline else f"## {part}")
        try:
            globals()[f"part_{part}"](bench)
        except Exception as err:  # one broken part must not cost the others their device time
            import traceback

            traceback.print_exc()
            failed.append(f"{part}: {type(err).__name__}: {err}")
    say(f"# done in {time.time() - bench.start:.0f} s" + "".join(f"\n# FAILED {f}" for f in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
