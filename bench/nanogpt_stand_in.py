"""A stand-in printing nanoGPT's log format, for --smoke where the anchors are missing (it tests the parser only).

python bench/nanogpt_stand_in.py --max_iters=8 --eval_interval=4 --batch_size=4 --block_size=32
"""

from __future__ import annotations

import sys
import time


def main(flags: list[str]) -> None:
    opts = dict(f[2:].split("=", 1) for f in flags if f.startswith("--") and "=" in f)
    steps, every = int(opts.get("max_iters", 8)), int(opts.get("eval_interval", 4))
    print(f"tokens per iteration will be: {int(opts.get('batch_size', 4)) * int(opts.get('block_size', 32)):,}")
    for it in range(steps + 1):
        if it % every == 0:
            print(f"step {it}: train loss {4.2 - it / 10:.4f}, val loss {4.25 - it / 10:.4f}")
        time.sleep(0.01)
        print(f"iter {it}: loss {4.2 - it / 10:.4f}, time 10.00ms, mfu -100.00%")


if __name__ == "__main__":
    main(sys.argv[1:])
