"""Numbers and side-by-side tables for the benchmarks' Markdown results."""

from __future__ import annotations

DIGITS = {"int": 0, "loss": 4, "s": 1, "ms": 2}


def fmt(value, digits: int = 1, *, pct: bool = False) -> str:
    """A number for a table: '-' when missing, thousands separated from 10,000 up, or a percentage."""
    if value is None:
        return "-"
    if pct:
        return f"{100 * value:.1f}%"
    if isinstance(value, int) or abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def side_table(rows: list[tuple[str, str, object, object, bool]], names: tuple[str, str]) -> str:
    """| metric | A | B | B / A |: each row (label, format, a, b, show_ratio)."""
    lines = [f"| metric | {names[0]} | {names[1]} | {names[1]} / {names[0]} |", "|---|---:|---:|---:|"]
    for label, kind, a, b, show in rows:
        fa, fb = (fmt(v, DIGITS.get(kind, 1), pct=kind == "pct") for v in (a, b))
        lines.append(f"| {label} | {fa} | {fb} | {ratio(b, a) if show else ''} |")
    return "\n".join(lines)
