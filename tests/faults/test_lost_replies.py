"""A reply lost after the server ran the request: every message's effect applied exactly once.

Through a :class:`~tests.faults.proxy.FaultProxy` the reply to a cycle's entry or commit is
lost after the server ran it (the commit committed, the entry claimed and locked). The caller
sees ``BackendUnavailable`` and the platform redelivers; the cycle's cleanup must undo an
entry that ran but never a commit that ran. Each message's effect is counted in the state.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from chatstate.adapters.redis import scripts
from tests.faults.conftest import Proxied
from tests.faults.redelivery import deliver, tally

MESSAGES = 30

#: What the proxy watches for, per backend: the entry's and the commit's request.
PATTERNS = {
    "database": (b"chatstate_enter", b"chatstate_commit"),
    # The ORM path's entry and commit are transactions; the first COMMIT armed is theirs.
    "database_orm": (b"COMMIT", b"COMMIT"),
    "redis": (scripts.CYCLE_ENTER.sha.encode(), scripts.CYCLE_COMMIT.sha.encode()),
}


def test_lost_replies_neither_double_nor_lose_a_message(
    proxied: Proxied, figures: Callable[..., None]
) -> None:
    rng = random.Random(11)
    enter_pattern, commit_pattern = PATTERNS[proxied.kind]
    proxy, store = proxied.proxy, proxied.adapter
    ids = [f"m{i}" for i in range(MESSAGES)]
    met: list[dict[str, int]] = []
    for message_id in ids:
        faults = {"enter": rng.random() < 0.3, "commit": rng.random() < 0.6}

        def arm(point: str, pattern: bytes, faults: dict[str, bool] = faults) -> Callable[[], None]:
            def hook() -> None:
                if faults[point]:  # the first delivery's only
                    faults[point] = False
                    proxy.arm(pattern)

            return hook

        met.append(
            deliver(
                store,
                message_id,
                thread_id="t",
                ttl=1.0,
                before_enter=arm("enter", enter_pattern),
                before_commit=arm("commit", commit_pattern),
            )
        )
        proxy.disarm()
    counts = tally(proxied.plain.thread_state("t")["seen"], ids)
    unavailable = sum(m.get("unavailable", 0) for m in met)
    figures(backend=proxied.kind, faults=proxy.dropped, unavailable=unavailable, **counts)
    assert proxy.dropped >= MESSAGES // 2, "too few faults were injected to mean anything"
    assert unavailable == proxy.dropped  # each lost reply surfaced as BackendUnavailable
    assert counts == {"messages": MESSAGES, "applied": MESSAGES, "doubles": 0, "lost": 0}
    assert all(proxied.plain.is_duplicate(("platform", i)) for i in ids)
    assert proxied.plain.snapshot().locks == {}


def test_the_next_call_after_a_lost_connection_works(proxied: Proxied) -> None:
    from chatstate import BackendUnavailable

    store = proxied.adapter
    store.subscribe("t")  # connected through the proxy
    proxied.proxy.cut_all()
    try:
        assert store.is_subscribed("t")  # a connection found dead before use is replaced
    except BackendUnavailable as exc:  # or the one call that found it dead says so
        assert ("'default'" in str(exc)) or ("'faulty'" in str(exc))
    assert store.is_subscribed("t")
    store.unsubscribe("t")
    assert not store.is_subscribed("t")
