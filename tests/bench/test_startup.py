"""bench/startup.py end to end, once each: the table it prints holds a number for every row."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_the_startup_benchmark_measures_the_recipe_and_the_debug_pass(tmp_path):
    out = tmp_path / "startup.md"
    proc = subprocess.run([sys.executable, "bench/startup.py", "--runs", "1", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| CPU") or line.startswith("| debug")]
    assert len(rows) == 5
    seconds = [float(re.findall(r"\| ([\d.]+) \|", row)[0]) for row in rows]
    first_step, whole, without_wandb = seconds[0], seconds[1], seconds[2]
    assert 0 < first_step < whole  # the first step comes before the 2-step run ends
    assert 0 < without_wandb < whole
    assert 0 < seconds[3] < seconds[4]  # debug=default: first step, whole process
    (machine,) = [line for line in out.read_text().splitlines() if "import torch" in line]
    assert 0 < float(re.findall(r"\| ([\d.]+) \|", machine)[0]) < first_step  # the machine's pace, beside them
