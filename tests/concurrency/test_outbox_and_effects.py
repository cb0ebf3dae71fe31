"""The outbox and a commit's staged effects across OS processes: dispatchers never take one
entry twice nor one thread's entries at once; cycles of one channel keep each other's
operations; appends to one list from many processes all land."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from tests.concurrency.harness import Crew

pytestmark = pytest.mark.crossprocess


def fill_outbox(store: Any, threads: int, messages: int) -> dict[str, list[str]]:
    """Commit ``messages`` replies on each of ``threads`` threads, interleaved; the keys of
    each thread in commit order."""
    keys: dict[str, list[str]] = defaultdict(list)
    for n in range(messages):
        for t in range(threads):
            thread_id = f"t{t}"
            message = ("xproc", f"{thread_id}-{n}")
            with store.handle_message(message, thread_id=thread_id, owner=f"w{n}") as msg:
                keys[thread_id].append(msg.send({"n": n}))
    return keys


def test_dispatchers_never_take_one_entry_twice_nor_one_thread_at_once(
    store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    keys = fill_outbox(store, threads=8, messages=6)
    processes = 4
    reports, seconds = crew.run(
        "dispatch_outbox", [{"hold": 0.01, "deadline": 60, "limit": 5}] * processes
    )
    sent = [s for r in reports for s in r["sent"]]
    figures(processes=processes, entries=len(sent), seconds=seconds)
    assert Counter(s["key"] for s in sent) == Counter(k for ks in keys.values() for k in ks)
    assert store.outbox() == []
    assert sum(1 for r in reports if r["sent"]) > 1  # the work was shared
    by_thread: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in sent:
        by_thread[s["thread"]].append(s)
    for thread_id, sends in by_thread.items():
        sends.sort(key=lambda s: s["began"])
        assert [s["key"] for s in sends] == keys[thread_id]  # commit order
        for before, after in zip(sends, sends[1:], strict=False):
            assert before["ended"] <= after["began"], (thread_id, before, after)


def test_cycles_of_one_channel_in_many_processes_keep_every_effect(
    store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    """Cycle ``n`` of each process goes to channel ``c<n>`` and list ``seen<n>``: the
    processes create each row at about the same moment (an insert race, run again)."""
    processes, cycles = 4, 15
    reports, seconds = crew.run(
        "channel_cycles", [{"channel_id": "c", "cycles": cycles}] * processes
    )
    handled = [m for r in reports for m in r["handled"]]
    figures(processes=processes, cycles=len(handled), seconds=seconds)
    assert len(handled) == processes * cycles
    for n in range(cycles):
        ids = sorted(f"p{i}-m{n}" for i in range(processes))
        assert store.channel_state(f"c{n}") == {"messages": processes, "threads": ids}
        assert sorted(store.get_list(f"seen{n}")) == ids
    assert all(store.history(m) == [m] for m in handled)
