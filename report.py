"""Compare runs: `python report.py logs/train/multiruns/<sweep> [more run or multirun dirs] [--out DIR] [--fit]`.

Reads each run's config.yaml, csv/metrics.csv, measure.json and generation.json (no network) and
writes summary.md, summary.csv and PNG plots into the report directory (default: <input>/report). Runs trained
to a compute budget (budget.flops, sweeps=isoflop) add the scaling fit: scaling.md, scaling.csv, scaling.json and
its figures (docs/scaling.md).
"""

import argparse
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the fits are tiny: more BLAS threads only wait on a busy CPU


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="run directories or multirun directories holding runs")
    parser.add_argument("--out", default=None, help="report directory (default: <input>/report)")
    parser.add_argument(
        "--wandb",
        choices=("auto", "on", "off"),
        default="auto",
        help="log the table and figures to W&B: auto = when online (credentials and no WANDB_MODE=offline)",
    )
    parser.add_argument(
        "--fit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the scaling section (IsoFLOP minima, fitted exponents, L(N, D)): default when a run has budget.flops",
    )
    parser.add_argument(
        "--params",
        choices=("total", "non_embedding"),
        default="total",
        help="what N counts in the fit: every parameter (Chinchilla's count) or those outside the embeddings",
    )
    parser.add_argument("--min-params", type=float, default=0, help="leave runs with fewer parameters out of the fit")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    args = parser.parse_args(argv)

    from analysis.report import make_report
    from errors import ConfigError
    from training.cli import user_errors

    with user_errors():  # a missing run directory, unreadable files: one line, exit 1
        if args.bootstrap < 1:
            raise ConfigError(f"--bootstrap={args.bootstrap} must be a positive number of resamples (e.g. 1000)")
        result = make_report(args.paths, args.out, wandb_mode=args.wandb, fit=args.fit, params=args.params,
                             min_params=args.min_params, bootstrap=args.bootstrap)  # fmt: skip
    runs, scaling = result["runs"], result["scaling"]
    print(result["table"].read_text())
    files = [result["table"], result["csv"], *result["plots"]]
    if result["ablation"] is not None:
        print(result["ablation"].read_text())
        files.insert(2, result["ablation"])
    if scaling is not None:
        print(scaling["md"].read_text())
        files += [scaling["md"], scaling["csv"], scaling["json"]]
    print(f"{len(runs)} run(s); report in {result['out']}:")
    for path in files:
        print(f"  {path}")
    print(result["wandb"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
