"""``handle_message(keepalive=True)`` across OS processes: a holder whose work outlives its
lease keeps the thread while it works; without keep-alive another process takes the thread
and the holder's commit raises ``LeaseLost`` with nothing written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.concurrency.harness import Crew

pytestmark = pytest.mark.crossprocess

TTL, WORK = 1.0, 3.0


@pytest.mark.parametrize("keepalive", [True, False], ids=["keepalive", "no-keepalive"])
def test_a_slow_holder_keeps_the_thread_only_with_keepalive(
    store: Any, crew: Crew, figures: Callable[..., None], keepalive: bool
) -> None:
    for name in ("held", "probing", "done"):
        crew.event(name)
    holder = crew.start(
        "hold_for",
        [{"thread_id": "slow", "ttl": TTL, "work": WORK, "keepalive": keepalive}],
        timeout=60,
    )
    probers = crew.start("probe_lock", [{"thread_id": "slow", "poll": 0.1}] * 2, timeout=60)
    (outcome,) = holder.wait()
    probes = probers.wait()
    taken = [p["taken_after"] for p in probes if p["taken_after"] is not None]
    figures(
        keepalive=keepalive,
        ttl=TTL,
        work=WORK,
        tries=sum(p["tries"] for p in probes),
        taken_after=min(taken) if taken else None,
        commit=outcome["commit"],
    )
    state = store.thread_state("slow")
    if keepalive:
        assert taken == [], "another process took the thread from a kept-alive holder"
        assert outcome == {"commit": "committed"}
        assert state == {"written_by": "slow-holder"}
    else:
        assert len(taken) == 1, "the lapsed lease was taken by exactly one prober"
        assert outcome == {"commit": "LeaseLost"}
        assert state == {}
