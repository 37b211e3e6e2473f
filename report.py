"""Compare runs: `python report.py logs/train/multiruns/<sweep> [more run or multirun dirs] [--out DIR]`.

Reads each run's config.yaml, csv/metrics.csv, measure.json and generation.json (no network) and
writes summary.md, summary.csv and PNG plots into the report directory (default: <input>/report).
"""

import argparse
import sys


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
    args = parser.parse_args(argv)

    from analysis.report import make_report
    from training.cli import user_errors

    with user_errors():  # a missing run directory, unreadable files: one line, exit 1
        result = make_report(args.paths, args.out, wandb_mode=args.wandb)
    runs = result["runs"]
    print(result["table"].read_text())
    if result["ablation"] is not None:
        print(result["ablation"].read_text())
    print(f"{len(runs)} run(s); report in {result['out']}:")
    tables = [result["table"], result["csv"], *([result["ablation"]] if result["ablation"] else [])]
    for path in [*tables, *result["plots"]]:
        print(f"  {path}")
    print(result["wandb"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
