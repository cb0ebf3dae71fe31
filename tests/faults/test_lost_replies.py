"""A reply lost after the server ran the request: every message's effect applied exactly once.

Through a :class:`~tests.faults.proxy.FaultProxy` the reply to a cycle's entry or commit is
lost after the server ran it (the commit committed, the entry claimed and locked). The caller
sees ``BackendUnavailable`` and the platform redelivers; the cycle's cleanup must undo an
entry that ran but never a commit that ran. Each message's effect is counted in the state.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Callable

import pytest

from chatstate.adapters.redis import scripts
from tests.faults.conftest import Proxied
from tests.faults.redelivery import adeliver, deliver, tally, tally_effects

MESSAGES = 30

#: What the proxy watches for, per backend: the entry's and the commit's request. The fast
#: path's statements are prepared (only their parameters travel): the entry's is marked by the
#: message id as a bound parameter (its length, then its text), the commit's (which finds the
#: claim by its row id) by the delivery's owner, ``<message id>-<hex>``; each is armed just
#: before its turn.
PATTERNS: dict[str, tuple[bytes, bytes] | None] = {
    "database": None,
    # The ORM path's entry and commit are transactions; the first COMMIT armed is theirs.
    "database_orm": (b"COMMIT", b"COMMIT"),
    "redis": (scripts.CYCLE_ENTER.sha.encode(), scripts.CYCLE_COMMIT.sha.encode()),
}


@pytest.mark.parametrize("mode", ["sync", "async", "effects"])
def test_lost_replies_neither_double_nor_lose_a_message(
    proxied: Proxied, figures: Callable[..., None], mode: str
) -> None:
    """``effects``: each message also stages a channel increment, a history append and an
    outbox entry (one unit of work): they must come out exact too."""
    rng = random.Random(11)
    proxy, store = proxied.proxy, proxied.adapter
    ids = [f"m{i}" for i in range(MESSAGES)]

    def hooks(message_id: str) -> dict[str, Callable[[], None]]:
        """This message's faults: its first delivery loses the entry's or commit's reply."""
        faults = {"enter": rng.random() < 0.3, "commit": rng.random() < 0.6}
        bound = struct.pack("!I", len(message_id)) + message_id.encode()
        owner = f"{message_id}-".encode()
        enter_pattern, commit_pattern = PATTERNS[proxied.kind] or (bound, owner)
        if proxied.kind == "redis" and mode == "effects":  # the commit that writes effects
            commit_pattern = scripts.CYCLE_COMMIT_EFFECTS.sha.encode()

        def arm(point: str, pattern: bytes) -> Callable[[], None]:
            def hook() -> None:
                if faults[point]:  # the first delivery's only
                    faults[point] = False
                    proxy.arm(pattern)

            return hook

        return {
            "before_enter": arm("enter", enter_pattern),
            "before_commit": arm("commit", commit_pattern),
        }

    met: list[dict[str, int]] = []
    if mode != "async":
        effects = mode == "effects"
        for message_id in ids:
            faults = hooks(message_id)
            met.append(
                deliver(store, message_id, thread_id="t", ttl=1.0, effects=effects, **faults)
            )
            proxy.disarm()
    else:

        async def run() -> None:
            for message_id in ids:
                met.append(
                    await adeliver(store, message_id, thread_id="t", ttl=1.0, **hooks(message_id))
                )
                proxy.disarm()
            close = getattr(store, "close", None)
            if close is not None:
                close()

        asyncio.run(run())
    counts = tally(proxied.plain.thread_state("t")["seen"], ids)
    unavailable = sum(m.get("unavailable", 0) for m in met)
    exact = tally_effects(proxied.plain, ["t"], ids) if mode == "effects" else {}
    figures(
        backend=proxied.kind,
        mode=mode,
        faults=proxy.dropped,
        unavailable=unavailable,
        **counts,
        **exact,
    )
    if exact:
        assert exact == {
            "counter": MESSAGES,
            "history_mismatches": 0,
            "outbox_doubles": 0,
            "outbox_lost": 0,
        }
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
