"""Start-up and the debug pass, as a new user meets them: launch to the first training step of the CPU recipe
(`make train` without a GPU) and `debug=default` end to end, each the fastest of N runs in a row, beside the time
`python -c "import torch"` takes on the machine at that moment (it drifts between spells: 1.0 s in a quick one on
the 2-core development machine, 1.5-2.5 s in slow ones).

    python bench/startup.py                 # 3 runs of each (about a minute on 2 idle cores)
    python bench/startup.py --runs 5 --out bench/results/startup_cpu.md

Launch is taken just before the process starts (TFORMER_LAUNCH_TIME, so the interpreter's own start counts);
the first step is measure.json's `launch_to_first_step` (the first optimizer step done). A run's CPU seconds
(user + sys, children excluded) say how much of a slow result is the machine being busy. Aims (issue 20):
<= 3 s to the first step and <= 10 s for debug=default, on 2 idle cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.recipe import RECIPES  # noqa: E402

# make train's CPU recipe, stopped right after its first steps: what comes after is not start-up.
RECIPE = [f"experiment={RECIPES['cpu'][0]}", "trainer.max_steps=2", "trainer.limit_val_batches=2",
          "callbacks.generation.num_samples=0", "sample.num_samples=0"]  # fmt: skip
DEBUG = ["debug=default"]
NO_WANDB = ["logger=csv"]  # the same recipe without W&B: how much of the start-up W&B's import and start are


def launch(args: list[str], run_dir: Path) -> dict:
    """One train.py run in its own process: wall seconds, CPU seconds, and measure.json's launch_to_first_step."""
    env = {**os.environ, "TFORMER_LAUNCH_TIME": repr(time.time())}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "train.py", f"hydra.run.dir={run_dir}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"train.py {' '.join(args)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    measure = json.loads((run_dir / "measure.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "first_step": measure.get("launch_to_first_step")}


def import_torch() -> dict:
    """How long `python -c "import torch"` takes now: how quick the machine is at the moment."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return {"wall": time.perf_counter() - start}


def best(runs: list[dict], key: str) -> str:
    """The fastest run's value; n/a where measure.json has none (a checkout older than launch_to_first_step)."""
    values = [r[key] for r in runs if r[key] is not None]
    return f"{min(values):.2f}" if values else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        recipe, debug, csv, torch_import = [], [], [], []
        for i in range(args.runs):  # interleaved, so that a slow spell of the machine hits every row alike
            torch_import.append(import_torch())
            recipe.append(launch(RECIPE, Path(tmp) / f"recipe{i}"))
            csv.append(launch([*RECIPE, *NO_WANDB], Path(tmp) / f"csv{i}"))
            debug.append(launch(DEBUG, Path(tmp) / f"debug{i}"))
    table = "\n".join([
        f"| what (fastest of {args.runs}, {os.cpu_count()} cores) | seconds | CPU seconds |",
        "| --- | ---: | ---: |",
        f"| the machine now: `python -c \"import torch\"` | {best(torch_import, 'wall')} | |",
        f"| CPU recipe ({RECIPE[0]}): launch to the first training step | {best(recipe, 'first_step')} | |",
        f"| CPU recipe, 2 steps: the whole process | {best(recipe, 'wall')} | {best(recipe, 'cpu')} |",
        f"| CPU recipe without W&B (logger=csv): launch to the first training step | {best(csv, 'first_step')} | |",
        f"| debug=default: launch to the first training step | {best(debug, 'first_step')} | |",
        f"| debug=default: the whole process | {best(debug, 'wall')} | {best(debug, 'cpu')} |",
    ])  # fmt: skip
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
