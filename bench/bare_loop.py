"""The project's GPT in a plain PyTorch loop, no Lightning: the third row of the GPU benchmark's char and gpt2 tables.

    python bench/bare_loop.py char  --steps 500          # gpt_small 6/6/384, batch 64 x 256, dropout 0.2
    python bench/bare_loop.py gpt2  --steps 300          # GPT-2 124M, batch 16 x 1024, vocabulary 50304
    python bench/bare_loop.py char  --smoke              # tiny sizes on CPU (the tests)

When the project's train.py is slower per step than nanoGPT, this row says where the gap lives: if the bare loop
matches nanoGPT, the time is Lightning's and the project's per-step host work (hooks, logging, callbacks); if it
does not, it is the model's graph or the optimizer. The loop is nanoGPT's: the same model the project builds
(models.gpt.GPT, compiled in place as train.py does), the project's AdamW groups (fused on CUDA), bf16 autocast,
gradient clipping at 1.0, random windows drawn on the device (the speed of a step does not depend on the text).
It prints nanoGPT's log format (`iter N: loss L, time T ms`, a host sync every --log-interval steps, as nanoGPT's
loss.item()), so bench/gpu_runs.parse_nanogpt reads it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHAPES = {  # (config, batch size)
    "char": (dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, bias=False), 64),
    "gpt2": (dict(vocab_size=50257, vocab_multiple=64, block_size=1024, n_layer=12, n_head=12, n_embd=768,
                  dropout=0.0, bias=False), 16),
}  # fmt: skip
TINY = dict(block_size=32, n_layer=1, n_head=2, n_embd=32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", choices=list(SHAPES))
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--log-interval", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--beta2", type=float, default=0.99)
    parser.add_argument("--compile", choices=["model", "blocks", "off"], default="model")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, fp32, no compile (CPU)")
    args = parser.parse_args(argv)

    import torch

    from lightning_modules.compiling import compile_model
    from lightning_modules.optim import OptimConfig, make_optimizer
    from models.gpt import GPT, GPTConfig

    sizes, batch = SHAPES[args.shape]
    if args.smoke:
        sizes, batch = {**sizes, **TINY}, 4
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported() and not args.smoke
    torch.manual_seed(1337)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    config = GPTConfig(**sizes)
    model = GPT(config).to(device)
    optim = make_optimizer(model, OptimConfig(lr=args.lr, beta2=args.beta2), device_type=device.type)
    if args.compile != "off" and not args.smoke:
        compile_model(model, scope=args.compile)
    block, vocab = config.block_size, config.vocab_size
    print(f"tokens per iteration will be: {batch * block:,}", flush=True)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    t0 = time.time()
    for it in range(args.steps + 1):
        data = torch.randint(vocab, (batch, block + 1), device=device)  # windows drawn on the device
        x, y = data[:, :-1], data[:, 1:]
        with autocast:
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        optim.zero_grad(set_to_none=True)
        if it % args.log_interval == 0:
            lossf = loss.item()  # the sync, as nanoGPT's
            t1 = time.time()
            dt, t0 = (t1 - t0) / (args.log_interval if it else 1), t1
            print(f"iter {it}: loss {lossf:.4f}, time {dt * 1000:.2f}ms, mfu -100.00%", flush=True)


if __name__ == "__main__":
    main()
