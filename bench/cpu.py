"""The CPU benchmark: nanoGPT's CPU recipe and the project's, back to back on one machine (the twin of gpu.py char).

    python bench/cpu.py                                   # run-nanogpt.sh cpu, then make train's CPU recipe
    python bench/cpu.py --recipe "experiment=shakespeare_char_cpu optim.lr=3e-3" --recipe "..."   # race recipes
    python bench/cpu.py --rounds 2                        # twice each, alternating who goes first: medians
    python bench/cpu.py --smoke                           # both sides, 8 steps at tiny sizes (what the test runs)

Both sides validate every --eval-interval steps on --eval-batches batches of nanoGPT's shape (batch 12 x 64).
Writes bench/results/cpu_<name>.{json,md}: launch to the end of the first training step, tokens/s (median
step, validation excluded), wall time from launch to the first val <= --target, the final val, the whole
process, and project / nanoGPT for each. docs/measurement.md ("CPU benchmark") says how each is counted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gpu_runs import parse_nanogpt, parse_project  # noqa: E402
from bench.harness import QUIET, TINY_GPT, TINY_NANOGPT, Bench, say  # noqa: E402
from bench.tables import side_table  # noqa: E402

RECIPE = "experiment=shakespeare_char_modern"  # make train's CPU recipe (training/recipe.py)
TARGET = 1.89  # nanoGPT's CPU recipe ends at about 1.886 (its README)
NANOGPT_BATCH = 12  # run-nanogpt.sh cpu: batch 12 x block 64; the project validates on batches of this size too
# Measured for the table (the project's value / nanoGPT's, per row); label, key, format.
COMPARED = [
    ("launch to the end of the first training step (s)", "launch_to_first_step", "s"),
    ("tokens/s (median step, validation excluded)", "tokens_per_sec", "int"),
    ("first val <= {target}: wall time since launch (s)", "time_to_target", "s"),
    ("final val loss", "final_val", "loss"),
    ("whole process, wall (s)", "wall", "s"),
]
TIMED = ("launch_to_first_step", "ms_per_step", "time_to_target", "wall")  # the machine's pace: median of rounds
FIRST_STEP = [  # bench/first_step.py: the project's time from launch to the end of its first step
    "+callbacks.first_step._target_=bench.first_step.FirstStep",
    "+callbacks.first_step.output_dir=${paths.output_dir}",
]


def nanogpt_flags(args: argparse.Namespace) -> list[str]:
    """Extra flags of `run-nanogpt.sh cpu`: its validation cadence and batches (and tiny sizes with --smoke)."""
    flags = [f"--eval_interval={args.eval_interval}", f"--eval_iters={args.eval_batches}"]
    if args.smoke:
        return [*TINY_NANOGPT, "--max_iters=8", "--lr_decay_iters=8", *flags]
    return flags


def project_overrides(args: argparse.Namespace, recipe: str) -> list[str]:
    """train.py overrides of one project side: validation matched to nanoGPT's (every --eval-interval steps,
    --eval-batches batches of nanoGPT's batch size), nothing nanoGPT does not do, then the recipe's own
    overrides (they win), then tiny sizes with --smoke."""
    batch = 4 if args.smoke else NANOGPT_BATCH  # TINY_NANOGPT's batch
    matched = [
        f"trainer.val_check_interval={args.eval_interval}",
        f"trainer.limit_val_batches={args.eval_batches}",
        f"data.val_batch_size={batch}",
    ]
    tiny = [*TINY_GPT, "trainer.max_steps=8", "trainer.log_every_n_steps=1", "compile=false"] if args.smoke else []
    return [*QUIET, *matched, *FIRST_STEP, *recipe.split(), *tiny]


def ratios(nano: dict, proj: dict) -> dict:
    """project / nanoGPT for every compared measure (None where a side lacks it)."""
    return {key: proj[key] / nano[key] if proj.get(key) and nano.get(key) else None for _, key, _ in COMPARED}


def table(nano: dict, proj: dict, target: float) -> str:
    rows = [("steps run", "int", nano.get("steps"), proj.get("steps"), False)]
    rows += [(label.format(target=target), kind, nano.get(key), proj.get(key), True) for label, key, kind in COMPARED]
    rows += [
        ("tokens per step", "int", nano.get("tokens_per_step"), proj.get("tokens_per_step"), False),
        ("ms per training step (median)", "ms", nano.get("ms_per_step"), proj.get("ms_per_step"), False),
        (f"first val <= {target}: at step", "int", nano.get("target_step"), proj.get("target_step"), False),
        ("best val loss", "loss", nano.get("best_val"), proj.get("best_val"), False),
        ("validations", "int", len(nano.get("val_curve", [])), len(proj.get("val_curve", [])), False),
    ]
    return side_table(rows, ("nanoGPT", "project"))


def combine(rounds: list[dict]) -> dict:
    """One side over its rounds: the first round's record with each TIMED value the median of the rounds' (None
    if a round lacks it) and tokens/s from the median step time; each round's own values under "rounds"."""
    side = dict(rounds[0])
    if len(rounds) == 1:
        return side
    for key in TIMED:
        values = [r.get(key) for r in rounds]
        side[key] = median(values) if all(v is not None for v in values) else None
    tokens, ms = side.get("tokens_per_step"), side.get("ms_per_step")
    side["tokens_per_sec"] = tokens * 1000 / ms if tokens and ms else None
    side["rounds"] = [{key: r.get(key) for key in (*TIMED, "tokens_per_sec", "final_val", "status")} for r in rounds]
    side["status"] = next((r["status"] for r in rounds if r["status"] != "ok"), "ok")
    return side


def run(bench: Bench, args: argparse.Namespace) -> dict:
    target = 10.0 if args.smoke else args.target  # a tiny model never gets near 1.89: any loss passes in --smoke
    recipes = args.recipe or [RECIPE]
    loads: dict[str, tuple] = {}
    nano_rounds: list[dict] = []
    proj_rounds: list[list[dict]] = [[] for _ in recipes]

    def nanogpt_side(tag: str) -> None:
        loads[f"before nanoGPT{tag}"] = os.getloadavg()
        launched = bench.nanogpt(args.name, "cpu", nanogpt_flags(args), cap=args.cap_s, tag=tag)
        nano = parse_nanogpt(launched.lines, eval_interval=args.eval_interval, target=target) if launched else {}
        nano.update(wall=launched.wall if launched else None, status=launched.status if launched else "anchors missing")
        nano_rounds.append(nano)

    def project_sides(tag: str) -> None:
        for i, recipe in enumerate(recipes):
            loads[f"before project {i + 1}{tag}"] = os.getloadavg()
            overrides = project_overrides(args, recipe)
            proc, run_dir = bench.train(args.name, f"project {i + 1}{tag}", overrides, cap=args.cap_s)
            proj = {"recipe": recipe, **parse_project(run_dir, target=target), "wall": proc.wall, "status": proc.status}
            proj_rounds[i].append({**proj, "overrides": overrides})

    for r in range(args.rounds):  # the order alternates: the machine's pace drifts within minutes
        tag = f" round {r + 1}" if args.rounds > 1 else ""
        sides = (nanogpt_side, project_sides) if r % 2 == 0 else (project_sides, nanogpt_side)
        for side in sides:
            side(tag)
    loads["after"] = os.getloadavg()
    nano = combine(nano_rounds)
    projects, tables = [], []
    for i, (recipe, rounds) in enumerate(zip(recipes, proj_rounds)):
        proj = combine(rounds)
        proj["ratios"] = ratios(nano, proj)
        projects.append(proj)
        tables.append(f"project {i + 1}: `{recipe}` ({proj['status']}; nanoGPT: {nano['status']})\n\n")
        tables[-1] += table(nano, proj, target)
    import torch

    val_tokens = args.eval_batches * (4 * 32 if args.smoke else NANOGPT_BATCH * 64)
    rounds = (
        f"Each time is the median of {args.rounds} rounds, run in alternating order (nanoGPT first in odd rounds, "
        "the project first in even ones); the JSON keeps every round's. "
        if args.rounds > 1
        else ""
    )
    note = (
        rounds
        + f"Machine: {os.cpu_count()} cores, torch {torch.get_num_threads()} threads, load average (1 min) "
        + ", ".join(f"{k} {v[0]:.2f}" for k, v in loads.items())
        + f". Both sides validate every {args.eval_interval} steps on {args.eval_batches} batches of "
        f"{val_tokens // args.eval_batches} tokens ({val_tokens:,} val tokens; nanoGPT also evaluates as many "
        "train tokens). Times are seconds since the benchmark started the process; nanoGPT's from the arrival of "
        "its `iter 0` and `step N: ... val loss` lines (timestamped by the benchmark as they stream), the "
        "project's from first_step.json and metrics.csv's perf/elapsed (the same clock, $TFORMER_LAUNCH_TIME). "
        "Ratio: project / nanoGPT."
    )
    record = {
        "name": args.name,
        "target": target,
        "eval_interval": args.eval_interval,
        "eval_batches": args.eval_batches,
        "val_tokens_per_validation": val_tokens,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": loads,
        "rounds": args.rounds,
        "nanogpt_flags": nanogpt_flags(args),
        "nanogpt": nano,
        "projects": projects,
    }
    bench.save(args.name, record, "\n\n".join(tables) + "\n\n" + note)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--recipe", action="append", help=f'train.py overrides of a project side, repeatable (default "{RECIPE}")'
    )
    parser.add_argument("--name", default="char", help="results go to bench/results/cpu_<name>.{json,md}")
    parser.add_argument("--eval-interval", type=int, default=100, help="steps between validations, both sides")
    parser.add_argument("--eval-batches", type=int, default=20, help="batches per validation, both sides")
    parser.add_argument("--target", type=float, default=TARGET, help="the val loss timed from launch")
    parser.add_argument("--cap-s", type=float, default=1800, help="a side is stopped after this many seconds")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run both sides this many times, alternating which goes first; "
        "times are the medians (a 2-core machine's pace drifts: the same run measured 143-192 ms a step)",
    )
    parser.add_argument("--smoke", action="store_true", help="8 steps at tiny sizes, validation every 4 on 2 batches")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"), help="where JSON + Markdown go")
    parser.add_argument("--work", default=str(ROOT / "bench" / "work"), help="run directories and logs")
    parser.add_argument("--out", default=None, help="also copy results and a tarball of logs here")
    parser.add_argument("--anchors", default=None, help="folder of run-nanogpt.sh (default: $ANCHORS, ...)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.eval_interval, args.eval_batches = 4, 2
    args.budget_s = None  # Bench's budget: none, each side has --cap-s
    bench = Bench(args, kind="cpu")
    say(f"# bench/cpu.py on {bench.device['name']} (torch {bench.device['torch']}){', smoke' if args.smoke else ''}")
    record = run(bench, args)
    sides = [record["nanogpt"], *record["projects"]]
    say(f"# done in {time.time() - bench.start:.0f} s")
    return 0 if all(s["status"] == "ok" for s in sides) else 1


if __name__ == "__main__":
    sys.exit(main())
