"""The GPU benchmark's translate part: experiment=translate_multi30k trained within the budget, then test2016
scored by translate.py with greedy and beam search from the averaged checkpoint (docs/translation.md)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from bench import gpu_runs
from bench.gpu_runs import parse_project
from bench.harness import ROOT, Bench
from bench.tables import fmt


def part_translate(bench: Bench) -> None:
    data = Path(os.environ.get("DATA_DIR", ROOT / "data")) / "multi30k"
    work = bench.work / "translate"
    if bench.smoke:
        overrides = [
            "model.n_enc_layer=1",
            "model.n_dec_layer=1",
            "model.n_embd=32",
            "model.n_head=2",
            "model.d_ff=64",
            "data.limit=64",
            "data.vocab_size=500",
            "data.max_tokens=512",
            "trainer.max_steps=4",
            "trainer.val_check_interval=2",
            "callbacks.averaging.last_n=2",
            "module.beam_size=2",
            "trainer.accelerator=cpu",
            "trainer.log_every_n_steps=1",
        ]
        n_test, beam = 16, 2
    else:
        overrides, n_test, beam = [], None, 5
    scoring = 60 if bench.smoke else 100  # seconds kept for the two test2016 decodes
    train_s = max(30.0, min(bench.args.translate_train_s, bench.left() - scoring - 20))
    max_time = time.strftime("00:%H:%M:%S", time.gmtime(train_s))
    proc, run_dir = bench.train(
        "translate",
        "project translate_multi30k",
        [
            "experiment=translate_multi30k",
            "logger=csv",
            "cpu_time_check=false",
            f"++trainer.max_time={max_time}",
            *overrides,
        ],
        cap=train_s + 120,
    )
    p = parse_project(run_dir)
    ckpts = run_dir / "checkpoints"
    ckpt = next((c for c in (ckpts / "averaged.ckpt", ckpts / "best.ckpt") if c.is_file()), None)
    src, ref = data / "test2016.de", data / "test2016.en"
    if n_test:  # the first sentences only
        src, ref = (take_lines(f, work / f.name, n_test) for f in (src, ref))
    scores = {}
    for label, beam_size, lp in (("greedy", 1, 1.0), (f"beam {beam}", beam, bench.args.length_penalty)):
        if ckpt is None or bench.left() < 20:
            scores[label] = {"status": "skipped: no checkpoint" if ckpt is None else "skipped: budget"}
            continue
        out = work / f"test_{beam_size}.json"
        cmd = [
            sys.executable,
            "translate.py",
            f"ckpt_path={ckpt}",
            f"input={src}",
            f"reference={ref}",
            f"output={work / f'test_hyps_beam{beam_size}.txt'}",
            f"score_json={out}",
            f"beam_size={beam_size}",
            f"length_penalty={lp}",
        ]
        run = bench.run("translate", f"translate.py {label}", cmd, cap=120)
        scores[label] = {**(gpu_runs.read_json(out) or {}), "status": run.status, "wall": run.wall}
    in_run = (run_dir / "test_bleu.txt").read_text().strip() if (run_dir / "test_bleu.txt").is_file() else None
    tokens = gpu_runs.column(gpu_runs.read_csv(run_dir / "csv" / "metrics.csv"), "train/tokens")
    target_tps = (
        (sum(v for _, v in tokens) / len(tokens) * 1000 / p["ms_per_step"]) if tokens and p["ms_per_step"] else None
    )
    lines = [
        f"- checkpoint scored: {ckpt.name if ckpt else 'none'}; training stopped by: "
        f"{'max_time ' + max_time if p['steps'] and p['steps'] < planned_steps(run_dir) else 'max_steps'}",
        f"- train.py wall from launch: {fmt(proc.wall)} s ({proc.status}); steps {p['steps']}; "
        f"{fmt(p['ms_per_step'], 2)} ms/step; {fmt(target_tps)} target tokens/s "
        f"({fmt(p['tokens_per_sec_measure'])} padded source tokens/s, Measure)",
        f"- bench wall so far: {fmt(time.time() - bench.start)} s (set-up, training, averaging, scoring)",
        f"- in-run test (best.ckpt, module.beam_size): {in_run.splitlines()[0] if in_run else '-'}",
        "",
        "| decoding | BLEU | signature | ms/sentence | sentences |",
        "|---|---:|---|---:|---:|",
    ]
    for label, s in scores.items():
        extra = f" (length_penalty {s.get('length_penalty')})" if s.get("beam_size", 1) > 1 else ""
        signature = str(s.get("signature", s.get("status"))).replace("|", "\\|")  # a Markdown cell
        lines.append(
            f"| {label}{extra} | {fmt(s.get('bleu'), 2)} | {signature} | "
            f"{fmt(s.get('ms_per_sentence'), 2)} | {s.get('sentences', '-')} |"
        )
    lines += ["", "| step | elapsed since launch (s) | val loss | val BLEU (greedy) |", "|---:|---:|---:|---:|"]
    lines += [
        f"| {c['step']} | {fmt(c['elapsed'])} | {fmt(c['val_loss'], 4)} | {fmt(c.get('val_bleu'), 2)} |"
        for c in p["val_curve"]
    ]
    record = {
        "train": {**p, "wall": proc.wall, "status": proc.status, "max_time": max_time},
        "target_tokens_per_sec": target_tps,
        "in_run_test": in_run,
        "test2016": scores,
    }
    bench.save("translate", record, "\n".join(lines))


def planned_steps(run_dir: Path) -> int:
    """trainer.max_steps of a run, from the config.yaml it wrote."""
    import yaml

    cfg = run_dir / "config.yaml"
    return int(yaml.safe_load(cfg.read_text())["trainer"]["max_steps"]) if cfg.is_file() else 0


def take_lines(path: Path, dest: Path, n: int) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8")
    return dest
