"""nanoGPT's yardstick for the benchmark tests: found where the benchmarks look, or the test skips."""

from __future__ import annotations

from pathlib import Path

import pytest


def nanogpt_anchors() -> Path:
    """The folder holding run-nanogpt.sh (--anchors, $ANCHORS, .gpuanchors/ or ../shared/anchors); skips without it."""
    from bench.harness import ROOT, anchors

    found = anchors()
    if found is None:
        where = ROOT.parent / "shared" / "anchors" / "run-nanogpt.sh"
        pytest.skip(f"needs nanoGPT's yardstick: {where} is missing (or point $ANCHORS at the folder holding it)")
    return found
