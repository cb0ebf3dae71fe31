"""The benchmark's figures as a table for humans (``chatstate_bench`` without ``--json``)."""

from __future__ import annotations

from typing import Any


def format_table(figures: dict[str, Any]) -> str:
    """The figures as a two-column table for humans."""
    width = max(len(k) for k in figures)
    lines = [f"{'figure':<{width}}  value", f"{'-' * width}  {'-' * 12}"]
    lines += [f"{k:<{width}}  {'-' if v is None else v}" for k, v in figures.items()]
    return "\n".join(lines)
