"""Average checkpoints: `python average.py run/checkpoints/a.ckpt run/checkpoints/b.ckpt ... -o averaged.ckpt`.

The mean of the weights of checkpoints of one model (same family and configuration), written as a
checkpoint that sample.py / translate.py read like any other. During training, the callback
`lightning_modules.callbacks.averaging.AverageCheckpoints` does the same for the last few validations.
"""

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="checkpoint files to average")
    parser.add_argument("-o", "--output", required=True, help="where to write the averaged checkpoint")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load checkpoints that hold Python code (full pickle runs that code): only files you trust",
    )
    args = parser.parse_args(argv)

    from errors import UserError
    from training.averaging import save_average
    from training.safe_load import trust_checkpoints

    trust_checkpoints(args.trust_checkpoint)
    try:
        path = save_average(args.checkpoints, args.output)
    except (UserError, FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    print(f"averaged {len(args.checkpoints)} checkpoints into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
