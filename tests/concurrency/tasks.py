"""What the children of the cross-process tests do, one function per task.

Each task runs in a child process, after Django is set up and the start barrier passed:
``task(adapter, index, events, **args)`` where ``index`` numbers the child in its batch and
``events`` holds the crew's named events. It returns plain data (lists, dicts, str, int)
for the parent to check; an exception travels to the parent as a traceback and fails the
test. Tasks only record what they observe: the assertions are the parent's.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from multiprocessing.synchronize import Event
from typing import Any

from chatstate import LockResult, NotOwner

Events = dict[str, Event]


def shuffled_in_blocks(items: Sequence[Any], seed: int, block: int) -> list[Any]:
    """``items`` with each run of ``block`` consecutive items shuffled (by ``seed``).

    Every child walks the same ids at about the same pace but in its own order, so children
    hit the same id at the same moment far more often than with a whole-list shuffle.
    """
    rng = random.Random(seed)
    out: list[Any] = []
    for start in range(0, len(items), block):
        chunk = list(items[start : start + block])
        rng.shuffle(chunk)
        out.extend(chunk)
    return out


def mutual_exclusion(
    adapter: Any,
    index: int,
    events: Events,
    *,
    key: str,
    counter: str,
    acquisitions: int,
    hold: float,
    deadline: float,
) -> dict[str, Any]:
    """Take ``key`` with ``reject`` until acquired ``acquisitions`` times (or ``deadline`` s).

    While holding it: read the counter map, mark it held by this child, sleep ``hold``
    seconds, write back the count read before plus one (deliberately not atomic: two
    holders at once would lose an increment) and clear the mark. ``overlaps`` counts the
    times this child found another holder's mark.
    """
    me = f"p{index}"
    rng = random.Random(index)
    acquired = busy = overlaps = 0
    others: list[str] = []
    stop = time.monotonic() + deadline
    while acquired < acquisitions and time.monotonic() < stop:
        result = adapter.lock(key, me, "reject")
        if result == LockResult.BUSY:
            busy += 1
            time.sleep(rng.uniform(0, 0.002))
            continue
        if result != LockResult.ACQUIRED:
            raise AssertionError(f"lock(reject) returned {result!r}")
        acquired += 1
        seen = adapter.thread_state(counter)
        if seen.get("holder") is not None:
            overlaps += 1
        adapter.put_thread_state(counter, {"n": seen.get("n", 0), "holder": me})
        time.sleep(hold)
        during = adapter.thread_state(counter)
        if during.get("holder") != me:
            overlaps += 1
        adapter.put_thread_state(counter, {"n": seen.get("n", 0) + 1, "holder": None})
        others.extend(e.owner for e in adapter.release_lock(key, me))
        time.sleep(rng.uniform(0, 0.002))  # let the others in
    return {"acquired": acquired, "busy": busy, "overlaps": overlaps, "pending": others}


def queue_entries(
    adapter: Any, index: int, events: Events, *, key: str, entries: int
) -> dict[str, Any]:
    """Queue ``entries`` entries on ``key`` (held by the parent), metadata ``{proc, n}``."""
    results = [
        adapter.lock(key, f"p{index}", "queue", {"proc": index, "n": n}).value
        for n in range(entries)
    ]
    return {"results": results}


def subscribe_and_mark(
    adapter: Any,
    index: int,
    events: Events,
    *,
    ids: list[str],
    limit: int,
    block: int,
) -> dict[str, Any]:
    """Subscribe thread ``id`` and mark dedupe key ``("xproc", id)`` for every id.

    Every exception is recorded (and the walk goes on), so the parent sees them all.
    """
    errors: list[str] = []
    calls = 0
    for thread_id in shuffled_in_blocks(ids, index, block):
        for method, args in (
            (adapter.subscribe, (thread_id,)),
            (adapter.mark_dedupe, (("xproc", thread_id), limit)),
        ):
            calls += 1
            try:
                method(*args)
            except Exception as exc:  # noqa: BLE001 - the parent must see every one
                errors.append(
                    f"{method.__name__}({thread_id!r}): "
                    f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
                )
    return {"calls": calls, "errors": errors}


def claim_keys(
    adapter: Any, index: int, events: Events, *, ids: list[str], limit: int, block: int
) -> dict[str, Any]:
    """``claim_dedupe(("xproc", id), limit)`` for every id in this child's order."""
    order = shuffled_in_blocks(ids, index, block)
    return {"claimed": [i for i in order if adapter.claim_dedupe(("xproc", i), limit)]}


def increments(
    adapter: Any, index: int, events: Events, *, thread_id: str, count: int
) -> dict[str, Any]:
    """Apply ``count`` increments to the thread's map with ``update_thread_state``.

    Each bumps ``count`` and this child's own ``p<index>``; returns the ``count`` each call
    stored (no two calls anywhere may store the same value).
    """
    me = f"p{index}"

    def bump(state: dict[str, Any]) -> dict[str, Any]:
        return {**state, "count": state.get("count", 0) + 1, me: state.get(me, 0) + 1}

    return {"seen": [adapter.update_thread_state(thread_id, bump)["count"] for _ in range(count)]}


def message_cycles(
    adapter: Any,
    index: int,
    events: Events,
    *,
    thread_id: str,
    cycles: int,
    hold: float,
) -> dict[str, Any]:
    """Run ``cycles`` deliveries through ``handle_message(strategy="queue")`` on one thread.

    An acquired cycle increments ``count`` in ``msg.state``, appends its message id to
    ``handled`` and sleeps ``hold`` seconds; after it, the entries its release returned
    are recorded. Returns each cycle's result and every pending entry received.
    """
    results: dict[str, str] = {}
    received: list[dict[str, Any]] = []
    for n in range(cycles):
        message_id = f"p{index}-m{n}"
        with adapter.handle_message(
            ("xproc", message_id),
            thread_id=thread_id,
            owner=message_id,
            strategy="queue",
            metadata={"proc": index, "n": n},
        ) as msg:
            if msg.duplicate:
                raise AssertionError(f"{message_id} was found a duplicate")
            if msg.acquired:
                msg.state["count"] = msg.state.get("count", 0) + 1
                msg.state["handled"] = [*msg.state.get("handled", []), message_id]
                time.sleep(hold)
        results[message_id] = msg.result.value if msg.result is not None else "none"
        received.extend({"owner": e.owner, **e.metadata} for e in msg.pending)
    return {"results": results, "received": received}


def hold_and_hang(
    adapter: Any, index: int, events: Events, *, key: str, owner: str, ttl: float, probe: str
) -> dict[str, Any]:
    """Take ``key`` with a ``ttl`` lease, say so, then hang until killed.

    Before setting ``events["held"]`` it stores in channel ``probe`` the host time just
    before the ``lock`` call (the lease cannot end before that plus ``ttl``) and the result.
    """
    before = time.time()
    result = adapter.lock(key, owner, "reject", ttl=ttl)
    adapter.put_channel_state(probe, {"lock_called_at": before, "result": result.value})
    events["held"].set()
    time.sleep(600)
    return {}


def take_over(
    adapter: Any,
    index: int,
    events: Events,
    *,
    key: str,
    owner: str,
    dead_owner: str,
    poll: float,
    deadline: float,
) -> dict[str, Any]:
    """Once ``events["go"]`` is set: try ``key`` once, then poll until acquired.

    Then try to release it as ``dead_owner`` (must be refused) and release it as ``owner``.
    Returns the first result with its host time, the time acquired, the number of tries,
    the refusal, and the pending entries received.
    """
    if not events["go"].wait(timeout=deadline):
        raise AssertionError("the parent never said go")
    first = adapter.lock(key, owner, "reject").value
    first_at = time.time()
    tries = 1
    stop = time.monotonic() + deadline
    result = first
    while result != LockResult.ACQUIRED and time.monotonic() < stop:
        time.sleep(poll)
        result = adapter.lock(key, owner, "reject").value
        tries += 1
    acquired_at = time.time()
    refused = ""
    if result == LockResult.ACQUIRED:
        try:
            adapter.release_lock(key, dead_owner)
        except NotOwner as exc:
            refused = type(exc).__name__
        entries = adapter.release_lock(key, owner)
    else:
        entries = []
    return {
        "first": first,
        "first_at": first_at,
        "result": result,
        "acquired_at": acquired_at,
        "tries": tries,
        "refused": refused,
        "entries": [
            {"owner": e.owner, "strategy": e.strategy.value, **e.metadata} for e in entries
        ],
    }


def deliver_messages(
    adapter: Any,
    index: int,
    events: Events,
    *,
    message_ids: Sequence[str],
    threads: int,
    ttl: float,
    block: int,
    hold: float,
    effects: bool = False,
) -> dict[str, int]:
    """Deliver every message (in this child's own order, see :func:`shuffled_in_blocks`) as
    a platform would, redelivering until it is handled or found done
    (:func:`tests.faults.redelivery.deliver`, staging its ``effects`` if asked). Message
    ``m<n>`` goes to thread ``t<n % threads>``. Returns the summed counts of what the
    deliveries met."""
    from collections import Counter

    from tests.faults.redelivery import deliver

    met: Counter[str] = Counter()
    if "started" in events:
        events["started"].set()  # past the start line: connected, warmed up
    for message_id in shuffled_in_blocks(message_ids, seed=index, block=block):
        thread_id = f"t{int(message_id[1:]) % threads}"
        met.update(
            deliver(
                adapter, message_id, thread_id=thread_id, ttl=ttl, attempts=2000, hold=hold,
                effects=effects,
            )
        )  # fmt: skip
    return dict(met)


def enter_and_hang(
    adapter: Any, index: int, events: Events, *, message_id: str, thread_id: str, ttl: float
) -> dict[str, Any]:
    """Take ``message_id`` through ``handle_message`` with a ``ttl`` lease, apply its effect
    to the block's state, say so, then hang inside the block until killed (never commits)."""
    with adapter.handle_message(
        ("platform", message_id), thread_id=thread_id, owner=f"doomed-{message_id}", ttl=ttl
    ) as msg:
        if not msg.acquired:
            raise AssertionError(f"{message_id}: {msg.result}, duplicate={msg.duplicate}")
        msg.state["seen"] = [*msg.state.get("seen", []), message_id]
        events["held"].set()
        time.sleep(600)
    return {}


def _handle(state: dict[str, Any], message_id: str, entry_id: str | None, hold: float) -> None:
    """The bot's work on one message: record it (and the queue entry it came as)."""
    state["handled"] = [*state.get("handled", []), [message_id, entry_id]]
    if hold:
        time.sleep(hold)


def deliver_and_drain(
    adapter: Any,
    index: int,
    events: Events,
    *,
    thread_id: str,
    messages: int,
    hold: float,
) -> dict[str, int]:
    """Deliver ``messages`` messages ``p<index>-<n>`` one after the other to one thread with
    ``strategy="queue"``; a delivery that acquires the thread handles its own message and
    then drains the queue. Returns how many were acquired and queued."""
    import uuid

    met = {"acquired": 0, "queued": 0}
    for n in range(messages):
        message_id = f"p{index}-{n:03d}"
        with adapter.handle_message(
            ("xproc", message_id),
            thread_id=thread_id,
            owner=f"{message_id}-{uuid.uuid4().hex[:6]}",
            strategy="queue",
            metadata={"mid": message_id},
            max_pending=10_000,
        ) as msg:
            if msg.duplicate or msg.result is None:
                raise AssertionError(f"{message_id}: {msg.result}, duplicate={msg.duplicate}")
            met[msg.result.value] += 1
            if msg.acquired:
                _handle(msg.state, message_id, None, hold)
                for entry in msg.drain():
                    _handle(msg.state, entry.metadata["mid"], entry.id, hold)
    return met


def drain_and_hang(
    adapter: Any, index: int, events: Events, *, thread_id: str, ttl: float, stop_at: int
) -> dict[str, Any]:
    """Deliver message ``holder`` to the thread the docs' way (handle it if acquired, then
    drain the queue, in which it may come itself), and hang (until killed) in the middle of
    the ``stop_at``-th entry drained, after it was handed out and before it is finished."""
    with adapter.handle_message(
        ("xproc", "holder"), thread_id=thread_id, owner="doomed", strategy="queue", ttl=ttl,
        metadata={"mid": "holder"},
    ) as msg:  # fmt: skip
        if msg.duplicate or msg.result is None:
            raise AssertionError(f"the doomed holder got {msg.result}")
        if msg.acquired:
            _handle(msg.state, "holder", None, 0)
        for n, entry in enumerate(msg.drain(), 1):
            _handle(msg.state, entry.metadata["mid"], entry.id, 0)
            if n == stop_at:
                events["draining"].set()
                time.sleep(600)
    return {}


def hold_for(
    adapter: Any, index: int, events: Events, *, thread_id: str, ttl: float, work: float,
    keepalive: bool,
) -> dict[str, Any]:  # fmt: skip
    """Handle one message holding ``thread_id`` with a ``ttl`` lease (``keepalive`` as given):
    say so, wait until the probers probe, work ``work`` seconds (saying so half a second
    before the end), then leave the block (commit). Reports how the commit went."""
    from chatstate import LeaseLost

    try:
        with adapter.handle_message(
            ("xproc", "slow"), thread_id=thread_id, owner="slow-holder", ttl=ttl,
            keepalive=keepalive,
        ) as msg:  # fmt: skip
            if not msg.acquired:
                raise AssertionError(f"the holder got {msg.result}")
            events["held"].set()
            if not events["probing"].wait(timeout=60):
                raise AssertionError("the probers never started")
            msg.state["written_by"] = "slow-holder"
            time.sleep(work - 0.5)
            events["done"].set()  # half a second early: a probe in flight lands before the end
            time.sleep(0.5)
    except LeaseLost:
        return {"commit": "LeaseLost"}
    return {"commit": "committed"}


def probe_lock(
    adapter: Any, index: int, events: Events, *, thread_id: str, poll: float
) -> dict[str, Any]:
    """While the holder works on ``thread_id``: try to take it every ``poll`` seconds,
    stopping once taken. Reports the tries and when it was taken (seconds after probing
    began), or None."""
    if not events["held"].wait(timeout=60):
        raise AssertionError("the holder never said it held the thread")
    events["probing"].set()
    start = time.monotonic()
    tries = 0
    while not events["done"].is_set() and time.monotonic() - start < 60:
        tries += 1
        if adapter.lock(thread_id, f"prober-{index}", "reject", ttl=30) is LockResult.ACQUIRED:
            return {"tries": tries, "taken_after": round(time.monotonic() - start, 2)}
        time.sleep(poll)
    return {"tries": tries, "taken_after": None}


def deliver_messages_timed(
    adapter: Any,
    index: int,
    events: Events,
    *,
    message_ids: Sequence[str],
    threads: int,
    ttl: float,
    hold: float,
) -> dict[str, Any]:
    """:func:`deliver_messages` (in this child's own order), also saying when (``time.time``)
    each message this child handled was acknowledged by the backend: ``{"met": counts,
    "handled_at": {message_id: seconds}}``."""
    from collections import Counter

    from tests.faults.redelivery import deliver

    met: Counter[str] = Counter()
    handled_at: dict[str, float] = {}
    events["started"].set()
    for message_id in shuffled_in_blocks(message_ids, seed=index, block=6):
        thread_id = f"t{int(message_id[1:]) % threads}"
        got = deliver(adapter, message_id, thread_id=thread_id, ttl=ttl, attempts=3000, hold=hold)
        if got.get("handled"):
            handled_at[message_id] = time.time()
        met.update(got)
    return {"met": dict(met), "handled_at": handled_at}


def _outbox_settings(lease: float) -> Any:
    """In a child: the outbox settings of the test (a short lease, immediate retries)."""
    from django.conf import settings
    from django.test import override_settings

    chatstate = {**getattr(settings, "CHATSTATE", {}), "OUTBOX_LEASE": lease}
    return override_settings(CHATSTATE={**chatstate, "OUTBOX_RETRY_DELAYS": (0,)})


def dispatch_until_empty(
    adapter: Any, index: int, events: Events, *, lease: float, limit: int, seconds: float
) -> dict[str, Any]:
    """Dispatch the outbox in batches of ``limit`` until it is empty (or ``seconds`` pass),
    recording each delivery: ``{"sent": [[key, thread_id, mid, monotonic_ns], ...], "counts"}``.
    """
    sent: list[list[Any]] = []

    def sender(entry: Any) -> None:
        sent.append([entry.key, entry.thread_id, entry.payload["mid"], time.monotonic_ns()])
        time.sleep(0.001)  # a platform's API takes a moment

    totals = {"sent": 0, "retried": 0, "dead": 0, "unavailable": 0}
    deadline = time.monotonic() + seconds
    with _outbox_settings(lease):
        while time.monotonic() < deadline:
            try:
                counts = adapter.dispatch_outbox(sender, limit=limit)
            except Exception:  # a killed connection: dispatch again
                totals["unavailable"] += 1
                time.sleep(0.02)
                continue
            for name, n in counts.items():
                totals[name] += n
            if not counts["sent"] and not adapter.outbox():
                break
            if not counts["sent"]:
                time.sleep(0.01)  # others hold the due entries
    return {"sent": sent, "counts": totals}


def dispatch_and_hang(adapter: Any, index: int, events: Events, *, lease: float) -> dict[str, Any]:
    """Dispatch the outbox with a sender that says so and then hangs (until killed)."""

    def sender(entry: Any) -> None:
        events["sending"].set()
        time.sleep(600)

    with _outbox_settings(lease):
        adapter.dispatch_outbox(sender)
    return {}


def dispatch_outbox(
    adapter: Any, index: int, events: Events, *, hold: float, deadline: float, limit: int
) -> dict[str, Any]:
    """Dispatch the outbox in batches of ``limit`` until it is empty (or ``deadline`` s).

    The sender records, for each entry, its key, thread and when (``time.time``) its send
    began and ended, sleeping ``hold`` seconds in between; a dispatch of nothing waits a
    little and tries again while entries are left (another child may hold their thread).
    """
    sent: list[dict[str, Any]] = []

    def sender(entry: Any) -> None:
        began = time.time()
        time.sleep(hold)
        sent.append({"key": entry.key, "thread": entry.thread_id, "began": began})
        sent[-1]["ended"] = time.time()

    stop = time.monotonic() + deadline
    dispatches = 0
    while time.monotonic() < stop:
        dispatches += 1
        if adapter.dispatch_outbox(sender, limit=limit)["sent"] == 0:
            if not adapter.outbox():
                break
            time.sleep(0.005)
    return {"sent": sent, "dispatches": dispatches}


def channel_cycles(
    adapter: Any, index: int, events: Events, *, channel_id: str, cycles: int
) -> dict[str, Any]:
    """Run ``cycles`` message cycles, each in a thread of its own; cycle ``n`` of every child
    is in the channel ``<channel_id><n>`` (so the children create each channel row and
    list at about the same moment): it increments the channel's ``messages``, adds its
    thread to ``threads`` and appends its message id to the list ``seen<n>`` and to its
    thread's history."""
    handled = []
    for n in range(cycles):
        message_id = f"p{index}-m{n}"
        with adapter.handle_message(
            ("xproc", message_id),
            thread_id=message_id,
            owner=message_id,
            channel_id=f"{channel_id}{n}",
        ) as msg:
            if not msg.acquired:
                raise AssertionError(f"{message_id}: {msg.result}")
            msg.channel.incr("messages")
            msg.channel.add("threads", message_id)
            msg.append_to_list(f"seen{n}", message_id)
            msg.history.append(message_id)
        handled.append(message_id)
    return {"handled": handled}


def capped_cycles(
    adapter: Any, index: int, events: Events, *, messages: int, cap: int, work: float,
    first: float,
) -> dict[str, Any]:  # fmt: skip
    """Deliver ``messages`` messages ``p<index>-<n>`` to one thread, ``concurrent`` with
    ``max_concurrent=cap``, the docs' way (handle it if acquired, then drain); each handling
    records ``[message_id, start, end]`` (``time.time``) after ``work`` seconds.

    A child's first message takes ``first`` seconds: the children start together, so the
    cap is full while the others arrive, however slow the store's cycle.
    """
    handled: list[list[Any]] = []
    met = {"acquired": 0, "queued": 0}

    def handle(message_id: str) -> None:
        start = time.time()
        time.sleep(first if message_id.endswith("-00") else work)
        handled.append([message_id, start, time.time()])

    for n in range(messages):
        message_id = f"p{index}-{n:02d}"
        with adapter.handle_message(
            ("xproc", message_id), thread_id="t", owner=message_id, strategy="concurrent",
            max_concurrent=cap, metadata={"mid": message_id}, ttl=30, max_pending=10_000,
        ) as msg:  # fmt: skip
            if msg.duplicate or msg.result is None:
                raise AssertionError(f"{message_id}: {msg.result}, duplicate={msg.duplicate}")
            met[msg.result.value] += 1
            if msg.acquired:
                handle(message_id)
            for entry in msg.drain():
                handle(entry.metadata["mid"])
    return {"handled": handled, "met": met}
