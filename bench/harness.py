"""What every part of the benchmarks shares: where results go, the time budget, launching train.py and
nanoGPT (`run-nanogpt.sh` from the anchors folder), and the device the numbers were taken on."""

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
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import gpu_runs  # noqa: E402
from bench.gpu_runs import launch  # noqa: E402

STAND_IN = ROOT / "bench" / "nanogpt_stand_in.py"
# Extra train.py overrides for side-by-side runs: nothing nanoGPT does not do (no samples, no generation
# metrics, no W&B start), CSV metrics only.
QUIET = ["logger=csv", "callbacks.samples=null", "callbacks.generation=null", "cpu_time_check=false"]
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
    """Where results go, how much time is left, and what every part shares (device, paths, launches).

    kind="gpu": results bench/results/gpu_<device>_<part>.{json,md}, runs under <work>/<device>/;
    kind="cpu": results bench/results/cpu_<part>.{json,md}, runs under <work>/cpu_bench/.
    """

    def __init__(self, args: argparse.Namespace, kind: str = "gpu"):
        self.args, self.smoke = args, args.smoke
        self.several = False  # more than one part in this call (gpu char then runs 2000 of its 5000 steps)
        self.start = time.time()
        self.deadline = self.start + args.budget_s if args.budget_s else None
        self.device = device_info()
        self.slug = self.device["slug"]
        self.prefix = f"gpu_{self.slug}" if kind == "gpu" else kind
        self.results = Path(args.results)
        self.work = Path(args.work) / (self.slug if kind == "gpu" else f"{kind}_bench")
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

    def nanogpt(self, part: str, recipe: str, flags: list[str], cap: float, tag: str = "") -> gpu_runs.Launch | None:
        found = anchors(self.args.anchors)
        if found is None:
            if not self.smoke:
                say("  nanoGPT: anchors not found ($ANCHORS, .gpuanchors or ../shared/anchors): side skipped")
                return None
            # --smoke without the anchors: a stand-in that prints nanoGPT's log format (tests the parser only)
            return self.run(part, f"nanoGPT (stand-in){tag}", [sys.executable, str(STAND_IN), *flags], cap)
        return self.run(part, f"nanoGPT {recipe}{tag}", ["bash", str(found / "run-nanogpt.sh"), recipe, *flags], cap)

    # -- results
    def save(self, part: str, record: dict, table: str) -> None:
        record = {"part": part, "smoke": self.smoke, **self.device, "bench_seconds": time.time() - self.start, **record}
        self.results.mkdir(parents=True, exist_ok=True)
        stem = f"{self.prefix}_{part}"
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
        """$OUT/<prefix>_bundle.tar.gz (every result, log and small run file) and summary.md: the
        device call returns at most 8 files, so the rest travels packed."""
        assert self.out is not None
        mds = sorted(self.results.glob(f"{self.prefix}_*.md"))
        (self.out / f"{self.prefix}_summary.md").write_text("\n".join(p.read_text() for p in mds))
        with tarfile.open(self.out / f"{self.prefix}_bundle.tar.gz", "w:gz") as tar:
            for p in sorted(self.results.glob(f"{self.prefix}_*")):
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
