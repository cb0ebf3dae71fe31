"""The guide pages run as written: each page's Python blocks, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def python_blocks(text: str) -> list[str]:
    """The ``.. code-block:: python`` blocks of an reST page, dedented."""
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text, re.M):
        lines = match.group(1).rstrip("\n").split("\n")
        blocks.append("\n".join(line[4:] for line in lines) + "\n")
    return blocks


@pytest.mark.parametrize(("page", "count"), [("unit-of-work.rst", 3), ("strategies.rst", 2)])
def test_the_page_runs_as_written(page: str, count: int) -> None:
    path = DOCS / page
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    assert len(blocks) >= count
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(path), "exec"), namespace)  # noqa: S102
