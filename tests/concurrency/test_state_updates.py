"""``update_thread_state`` across OS processes: no increment lost."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.concurrency.harness import Crew

pytestmark = pytest.mark.crossprocess


def test_concurrent_updates_lose_no_increment(
    store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    """(e) Each process applies its increments; every one lands, each seeing a new count."""
    processes, count = 6, 40
    reports, seconds = crew.run("increments", [{"thread_id": "tally", "count": count}] * processes)

    total = processes * count
    figures(processes=processes, increments=total, seconds=seconds)
    expected = {"count": total, **{f"p{i}": count for i in range(processes)}}
    assert store.thread_state("tally") == expected
    seen = [n for r in reports for n in r["seen"]]
    assert sorted(seen) == list(range(1, total + 1))  # each increment saw its own value
    assert all(r["seen"] == sorted(r["seen"]) for r in reports)
