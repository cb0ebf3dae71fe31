"""``handle_message(keepalive=True)``: the lease renewed while the block runs.

The renewals run on a thread of their own (on a connection of their own, for a database):
these tests commit what they write (``transactional_db``) so that thread sees it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from chatstate import LeaseLost, LockResult
from chatstate.testing.helpers import run_async

TTL = 1.5  # renewed every 0.5 s: a renewal delayed by up to a second still lands in time
#: How long the kept-alive tests hold: a whole lease past the first one's end.
HELD = 2 * TTL

pytestmark = pytest.mark.usefixtures("transactional_db")


def hold_past_the_ttl(store: Any) -> None:
    """Hold ``"t"`` with keepalive for a lease past the first; check no one else can take it."""
    with store.handle_message(("s", "m"), thread_id="t", owner="a", ttl=TTL, keepalive=True) as msg:
        deadline = time.monotonic() + HELD
        while time.monotonic() < deadline:
            assert store.lock("t", "other", ttl=60) is LockResult.BUSY
            time.sleep(TTL / 6)
        assert not msg.lease_lost
        msg.state["n"] = 1


def test_a_kept_alive_holder_keeps_the_thread_past_its_ttl(store: Any) -> None:
    hold_past_the_ttl(store)
    assert store.thread_state("t") == {"n": 1}
    assert store.snapshot().locks == {}


def test_a_renewal_that_raises_is_tried_again(store: Any, monkeypatch: Any) -> None:
    """Any error of a renewal, not only an unavailable backend, is tried again sooner: the
    holder keeps its thread, and the renewals go on."""
    renew = store._do_cycle_renew
    failures: list[str] = []

    def flaky(request: Any) -> Any:
        if not failures:
            failures.append(request.thread_id)
            raise RuntimeError("a renewal that fails once")
        return renew(request)

    monkeypatch.setattr(store, "_do_cycle_renew", flaky)
    hold_past_the_ttl(store)
    assert failures == ["t"]
    assert store.thread_state("t") == {"n": 1}


def test_without_keepalive_the_thread_is_lost_and_the_commit_writes_nothing(store: Any) -> None:
    with (
        pytest.raises(LeaseLost),
        store.handle_message(("s", "m"), thread_id="t", owner="a", ttl=TTL) as msg,
    ):
        time.sleep(TTL + 0.1)
        assert store.lock("t", "other", ttl=60) is LockResult.ACQUIRED
        msg.state["n"] = 1
    assert store.thread_state("t") == {}


def test_a_renewal_that_finds_the_lease_gone_marks_it_lost_at_once(store: Any) -> None:
    with (
        pytest.raises(LeaseLost),
        store.handle_message(("s", "m"), thread_id="t", owner="a", ttl=TTL, keepalive=True) as msg,
    ):
        store.force_release_lock("t")
        assert store.lock("t", "usurper", ttl=60) is LockResult.ACQUIRED
        deadline = time.monotonic() + TTL
        while not msg.lease_lost and time.monotonic() < deadline:
            time.sleep(0.02)
        assert msg.lease_lost
        msg.state["n"] = 1
    assert store.thread_state("t") == {}
    assert store.snapshot().locks["t"]["owner"] == "usurper"


def test_keepalive_under_concurrent_renews_the_claim(store: Any) -> None:
    with store.handle_message(
        ("s", "m"), thread_id="t", owner="a", strategy="concurrent", ttl=TTL, keepalive=True
    ) as msg:
        time.sleep(HELD)
        with store.handle_message(("s", "m"), thread_id="t", owner="b") as again:
            assert again.duplicate and again.in_progress
        msg.state["n"] = 1
    assert store.thread_state("t") == {"n": 1}


def test_the_async_keepalive_is_a_task(store: Any) -> None:
    async def cycle() -> bool:
        async with store.ahandle_message(
            ("s", "m"), thread_id="t", owner="a", ttl=TTL, keepalive=True
        ) as msg:
            await asyncio.sleep(HELD)
            busy = await store.alock("t", "other", ttl=60)
            msg.state["n"] = 1
        return busy is LockResult.BUSY

    assert run_async(cycle)
    assert store.thread_state("t") == {"n": 1}
