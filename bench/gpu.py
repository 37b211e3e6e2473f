"""The GPU benchmark: the project against nanoGPT side by side, the speed recipe, kernels, memory, translation.

    python3 bench/gpu.py all --budget-s 540 --out $OUT       # one device call: char, speedrun, gpt2, kernels
    python3 bench/gpu.py translate --budget-s 540 --out $OUT # the Multi30k recipe, trained and scored
    python3 bench/gpu.py char [gpt2 ...] [--char-steps 5000]  # single parts (each under 8 minutes on an H100)
    python  bench/gpu.py all translate --smoke                # every part on CPU at tiny sizes (the tests run this)

Parts (each writes bench/results/gpu_<device>_<part>.json and .md; docs/measurement.md explains them):
  char      nanoGPT's char recipe ($ANCHORS/run-nanogpt.sh char), then the project's
            experiment=nanogpt_shakespeare_char, back to back: wall time, ms/step (validation excluded),
            tokens/s, best val and its step, time from launch to the first val <= 1.47; then the project's
            model in a plain PyTorch loop (bench/bare_loop.py: what Lightning's host work costs a step).
  speedrun  experiment=shakespeare_char_speedrun and variants of it: time from launch to val <= 1.47.
  gpt2      nanoGPT's GPT-2 124M recipe (block 1024, batch 16, 300 steps) and the project's model=gpt2
            data=shakespeare_bpe at the same sizes: tokens/s and MFU = tokens/s x (6N + 12·L·T·C) / peak;
            the plain loop too.
  kernels   model.attention=sdpa|flash|math forward+backward at block 256, 1024, 4096 with the CUDA kernels
            the profiler saw; the memory estimate against torch.cuda.max_memory_allocated (bench/memory_check.py).
  translate experiment=translate_multi30k: time, steps, tokens/s, the val loss and BLEU curve, test2016
            sacreBLEU with greedy and beam search from the averaged checkpoint, decoding time per sentence.
With --budget-s the parts run in order while time is left; a part's processes are stopped at the budget
and what they printed so far is kept. --out also gets every result and a tarball of the logs (unpack it in
the repository root: it restores bench/results/ and bench/work/).
"""
# This file is the command line; the parts live in bench/gpu_training.py (char, speedrun, gpt2),
# bench/gpu_kernels.py and bench/gpu_translate.py, on bench/harness.py (launches, budget, results),
# bench/gpu_runs.py (reading both sides' logs) and bench/tables.py.

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import nanogpt_stand_in  # noqa: E402
from bench.gpu_kernels import part_kernels  # noqa: E402
from bench.gpu_training import SPEEDRUN_VARIANTS, part_char, part_gpt2, part_speedrun  # noqa: E402
from bench.gpu_translate import part_translate  # noqa: E402
from bench.harness import Bench, say  # noqa: E402

PARTS = {
    "char": part_char,
    "speedrun": part_speedrun,
    "gpt2": part_gpt2,
    "kernels": part_kernels,
    "translate": part_translate,
}
ALL = ("char", "speedrun", "gpt2", "kernels")  # one device call; translate needs a call of its own


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
    parser.add_argument("--char-extra", nargs="*", default=None, help='more project char runs: "overrides ..." each')
    parser.add_argument("--gpt2-extra", nargs="*", default=None, help='more project gpt2 runs: "overrides ..." each')
    parser.add_argument("--translate-train-s", type=float, default=420, help="training time cap of translate (s)")
    parser.add_argument("--length-penalty", type=float, default=1.0, help="of the beam-search test decode")
    parser.add_argument("--anchors", default=None, help="folder of run-nanogpt.sh (default: $ANCHORS, ...)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the device's dense bf16 peak")
    parser.add_argument("--fake-nanogpt", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fake_nanogpt is not None:
        nanogpt_stand_in.main(args.fake_nanogpt)
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
            PARTS[part](bench)
        except Exception as err:  # one broken part must not cost the others their device time
            import traceback

            traceback.print_exc()
            failed.append(f"{part}: {type(err).__name__}: {err}")
    say(f"# done in {time.time() - bench.start:.0f} s" + "".join(f"\n# FAILED {f}" for f in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
