"""The report's figures as images: each PNG of analysis.plots.PLOTS has its figure size (inches x the dpi it was
saved with) and is no blank canvas. What each figure plots is checked on the data: tests/analysis/test_report.py."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from analysis.plots import PLOTS


def assert_figures(report_dir: Path) -> None:
    for name, (_, (width, height)) in PLOTS.items():
        with Image.open(report_dir / name) as image:
            dpi = image.info["dpi"][0]
            assert image.size == (round(width * dpi), round(height * dpi)), name
            assert len(image.convert("RGB").getcolors(1 << 20)) > 100, f"{name} is (nearly) blank"
