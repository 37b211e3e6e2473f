"""KV-cache against uncached generation: tokens/s as the generated length grows.

    python bench/generation.py [--n-layer 6 --n-embd 384 --n-head 6 --block-size 256]

With the cache each new token costs one position through the network (plus attention over the
window); without it, the whole window is recomputed for every token.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.gpt import GPT, GPTConfig  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n-layer", type=int, default=6)
    p.add_argument("--n-head", type=int, default=6)
    p.add_argument("--n-embd", type=int, default=384)
    p.add_argument("--block-size", type=int, default=256)
    p.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512])
    args = p.parse_args()
    torch.manual_seed(0)
    cfg = GPTConfig(65, args.block_size, args.n_layer, args.n_head, args.n_embd, bias=False)
    model = GPT(cfg).eval()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    threads = torch.get_num_threads()
    print(f"GPT {args.n_layer}/{args.n_head}/{args.n_embd}, block {args.block_size}, batch 1, {threads} threads")
    print("| new tokens | cached tok/s | uncached tok/s | speed-up |")
    print("| ---: | ---: | ---: | ---: |")
    for n in args.lengths:
        rates = []
        for use_cache in (True, False):
            start = time.perf_counter()
            model.generate(prompt, n, use_cache=use_cache, generator=torch.Generator().manual_seed(0))
            rates.append(n / (time.perf_counter() - start))
        print(f"| {n} | {rates[0]:.0f} | {rates[1]:.0f} | {rates[0] / rates[1]:.1f}x |")


if __name__ == "__main__":
    main()
