"""A corpus far larger than the memory a run uses: generate >= 1 GB of text, tokenize it (streamed into a
memory-mapped token cache) and train a few steps on it, measuring wall time and peak RSS of each stage.

    python bench/large_corpus.py                      # 1 GB, char tokens, 20 steps (several minutes on 2 cores)
    python bench/large_corpus.py --gb 2 --tokenizer gpt2
    python bench/large_corpus.py --smoke              # a 2 MB corpus through the same path (seconds; a test runs it)

Each stage runs in its own process (its peak RSS from os.wait4). Writes <workdir>/result.json and prints a
markdown table (docs/data.md holds a measured one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SYLLABLES = "ka ri to ne mu sa lo vi de ха ро μα ση ün çe ña".split()


def generate(path: Path, size: int, seed: int = 0) -> int:
    """Write about `size` bytes of text: Zipf-distributed pseudo-words, 12 to a line (never all in memory)."""
    rng = np.random.default_rng(seed)
    words = np.array(["".join(rng.choice(SYLLABLES, rng.integers(1, 4))) for _ in range(20_000)])
    weights = 1.0 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size:
            chosen = words[rng.choice(len(words), size=240_000, p=weights)].reshape(-1, 12)
            block = "\n".join(" ".join(line) for line in chosen) + "\n"
            f.write(block)
            written += len(block.encode("utf-8"))
    return path.stat().st_size


def run_stage(cmd: list[str], env: dict) -> tuple[dict, str]:
    """Run one stage as a child process: its wall time and peak RSS (MB), and its output."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-3000:]}")
    return {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}, output


def tokenize(corpus: str, cache: str, tokenizer: str) -> None:
    """The tokenize stage (in a child process): build both splits' token caches."""
    from datamodules.text import TextDataModule

    dm = TextDataModule(path=corpus, cache_dir=cache, tokenizer=tokenizer)
    dm.prepare_data()
    paths = [dm.tokens_path(split) for split in ("train", "val")]
    meta = [json.loads(p.with_name("meta.json").read_text()) for p in paths]
    tokens = {m["split"]: m["tokens"] for m in meta}
    cache_bytes = sum(p.stat().st_size for p in paths)
    print(json.dumps({"tokens": tokens, "dtype": meta[0]["dtype"], "cache_bytes": cache_bytes}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.0, help="corpus size in GB (10^9 bytes)")
    parser.add_argument("--tokenizer", default="char", help="char | gpt2 | another cached tiktoken encoding")
    parser.add_argument("--steps", type=int, default=20, help="training steps")
    parser.add_argument("--workdir", default="/tmp/tformer_large_corpus", help="corpus, caches and run go here")
    parser.add_argument("--smoke", action="store_true", help="a 2 MB corpus and 2 steps (the test of this script)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.workdir)
    corpus, cache = work / "corpus.txt", work / "cache"
    if args.stage == "tokenize":
        sys.path.insert(0, str(ROOT))
        return tokenize(str(corpus), str(cache), args.tokenizer)

    size = 2_000_000 if args.smoke else int(args.gb * 1e9)
    steps = 2 if args.smoke else args.steps
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if not corpus.is_file() or corpus.stat().st_size < size:
        generate(corpus, size)
    result = {"corpus_bytes": corpus.stat().st_size, "generate_seconds": round(time.perf_counter() - start, 1)}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TFORMER_CACHE_DIR": str(cache), "TFORMER_LOG_DIR": str(work / "logs")}
    env.setdefault("WANDB_MODE", "offline")
    me = [sys.executable, str(Path(__file__).resolve()), "--workdir", str(work), "--tokenizer", args.tokenizer]
    result["tokenize"], output = run_stage([*me, "--stage", "tokenize"], env)
    result.update(json.loads(output.strip().splitlines()[-1]))
    stages = ["tokenize", "train"] if args.smoke else ["tokenize", "tokenize_again", "train"]
    if not args.smoke:  # the caches exist: only the start-up (imports) is left
        result["tokenize_again"], _ = run_stage([*me, "--stage", "tokenize"], env)
    train = [
        sys.executable, str(ROOT / "train.py"), "data=text", f"data.path={corpus}", f"data.tokenizer={args.tokenizer}",
        "model=gpt_nano", "model.n_layer=2", "model.n_embd=64", "model.n_head=2", "data.batch_size=16",
        "data.block_size=64", "trainer=cpu", f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}",
        "trainer.limit_val_batches=20", "logger=csv", "cpu_time_check=false", "sample.max_new_tokens=50",
        "callbacks.generation.num_samples=2", "callbacks.generation.num_words=10",
    ]  # fmt: skip
    result["train"], _ = run_stage(train, env)
    result.update(tokenizer=args.tokenizer, steps=steps, cpus=os.cpu_count())
    (work / "result.json").write_text(json.dumps(result, indent=2))
    mb = result["corpus_bytes"] / 1e6
    print("| corpus | tokenizer | tokens (train / val) | token cache | stage | wall | peak RSS |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for stage in stages:
        tokens = f"{result['tokens']['train']:,} / {result['tokens']['val']:,}"
        cache = f"{result['cache_bytes'] / 1e6:,.0f} MB ({result['dtype']})"
        row = result[stage]
        wall, rss = f"{row['seconds']} s", f"{row['peak_rss_mb']} MB"
        print(f"| {mb:,.0f} MB | {args.tokenizer} | {tokens} | {cache} | {stage} | {wall} | {rss} |")
    print(f"result: {work / 'result.json'}")


if __name__ == "__main__":
    main()
