"""The outbox: replies staged with ``msg.send`` are stored with their message's commit and
delivered after it, at least once, one thread's entries in commit order."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chatstate import LockResult, OutboxEntry
from chatstate.testing.helpers import run_async

M = ("slack", "m1")


class Boom(Exception):
    pass


@pytest.fixture
def fast_retries(settings: Any) -> None:
    settings.CHATSTATE = {
        **getattr(settings, "CHATSTATE", {}),
        "OUTBOX_RETRY_DELAYS": (0,),
        "OUTBOX_MAX_ATTEMPTS": 3,
    }


def reply(store: Any, message: str, thread: str = "t", *texts: str) -> None:
    with store.handle_message(("slack", message), thread_id=thread, owner=message) as msg:
        assert msg.acquired
        for text in texts or (f"re {message}",):
            msg.send({"text": text})


class Recorder:
    def __init__(self, fail: int = 0, always: set[str] | None = None) -> None:
        self.sent: list[OutboxEntry] = []
        self.fail, self.always = fail, always or set()

    def __call__(self, entry: OutboxEntry) -> None:
        if entry.payload["text"] in self.always:
            raise Boom(entry.key)
        if self.fail:
            self.fail -= 1
            raise Boom(entry.key)
        self.sent.append(entry)

    @property
    def texts(self) -> list[str]:
        return [e.payload["text"] for e in self.sent]


def test_a_block_that_raises_sends_nothing(store: Any) -> None:
    with pytest.raises(Boom), store.handle_message(M, thread_id="t", owner="w") as msg:
        msg.send({"text": "hello"})
        raise Boom
    assert store.outbox() == []


def test_a_commit_stores_one_entry_and_a_redelivery_none_more(store: Any) -> None:
    with store.handle_message(M, thread_id="t", owner="w") as msg:
        key = msg.send({"text": "hello"})
        assert store.outbox() == []  # staged, not stored
    (entry,) = store.outbox()
    assert (entry.key, entry.thread_id, entry.payload) == (key, "t", {"text": "hello"})
    assert key == "slack:m1:0"
    assert (entry.attempts, entry.dead) == (0, False)
    assert entry.created_at and entry.created_at.endswith("Z")
    with store.handle_message(M, thread_id="t", owner="w2") as again:
        assert again.duplicate
    assert len(store.outbox()) == 1


def test_keys_are_derived_in_send_order_or_given(store: Any) -> None:
    with store.handle_message(M, thread_id="t", owner="w") as msg:
        assert msg.send({"text": "a"}) == "slack:m1:0"
        assert msg.send({"text": "b"}, key="mine") == "mine"
        assert msg.send({"text": "c"}) == "slack:m1:1"
        with pytest.raises(TypeError, match=r"\$\['x'\]"):
            msg.send({"x": float("nan")})
        with pytest.raises(ValueError):
            msg.send({"text": "d"}, key="")
    assert [e.key for e in store.outbox()] == ["slack:m1:0", "mine", "slack:m1:1"]


def test_an_entry_whose_key_is_waiting_is_not_added_again(store: Any) -> None:
    for n in range(2):
        with store.handle_message(("s", f"m{n}"), thread_id="t", owner="w") as msg:
            msg.send({"text": f"v{n}"}, key="once")
    assert [e.payload["text"] for e in store.outbox()] == ["v0"]


def test_outbox_lists_oldest_first_by_thread(store: Any) -> None:
    reply(store, "a1", "ta")
    reply(store, "b1", "tb")
    reply(store, "a2", "ta")
    assert [e.payload["text"] for e in store.outbox()] == ["re a1", "re b1", "re a2"]
    assert [e.payload["text"] for e in store.outbox("ta")] == ["re a1", "re a2"]


def test_dispatch_delivers_in_order_and_removes(store: Any) -> None:
    for n in range(3):
        reply(store, f"m{n}", "t", f"{n}a", f"{n}b")
    sender = Recorder()
    assert store.dispatch_outbox(sender) == {"sent": 6, "retried": 0, "dead": 0}
    assert sender.texts == ["0a", "0b", "1a", "1b", "2a", "2b"]
    assert store.outbox() == []
    assert store.dispatch_outbox(sender) == {"sent": 0, "retried": 0, "dead": 0}


def test_the_limit_bounds_a_dispatch(store: Any) -> None:
    for n in range(5):
        reply(store, f"m{n}")
    sender = Recorder()
    assert store.dispatch_outbox(sender, limit=2)["sent"] == 2
    assert store.dispatch_outbox(sender, limit=10)["sent"] == 3
    assert sender.texts == [f"re m{n}" for n in range(5)]


@pytest.mark.usefixtures("fast_retries")
def test_a_sender_that_fails_twice_then_succeeds(store: Any) -> None:
    reply(store, "m1")
    sender = Recorder(fail=2)
    assert store.dispatch_outbox(sender) == {"sent": 0, "retried": 1, "dead": 0}
    (entry,) = store.outbox()
    assert entry.attempts == 1
    assert store.dispatch_outbox(sender) == {"sent": 0, "retried": 1, "dead": 0}
    assert store.dispatch_outbox(sender) == {"sent": 1, "retried": 0, "dead": 0}
    assert sender.sent[0].attempts == 2  # it had failed twice: this was the third try
    assert store.outbox() == []


@pytest.mark.usefixtures("fast_retries")
def test_a_failing_entry_holds_back_its_thread_only(store: Any) -> None:
    reply(store, "a1", "ta", "bad")
    reply(store, "a2", "ta", "after bad")
    reply(store, "b1", "tb", "other thread")
    sender = Recorder(always={"bad"})
    assert store.dispatch_outbox(sender) == {"sent": 1, "retried": 1, "dead": 0}
    assert sender.texts == ["other thread"]
    assert store.dispatch_outbox(sender) == {"sent": 0, "retried": 1, "dead": 0}
    assert sender.texts == ["other thread"]  # never "after bad" while "bad" waits
    # The third failure kills it (OUTBOX_MAX_ATTEMPTS = 3): the thread goes on.
    assert store.dispatch_outbox(sender) == {"sent": 1, "retried": 0, "dead": 1}
    assert sender.texts == ["other thread", "after bad"]
    (dead,) = store.outbox()
    assert (dead.payload["text"], dead.dead, dead.attempts) == ("bad", True, 3)
    assert store.dispatch_outbox(sender) == {"sent": 0, "retried": 0, "dead": 0}
    assert store.requeue_outbox([dead.id]) == 1
    (again,) = store.outbox()
    assert (again.dead, again.attempts) == (False, 0)
    assert store.discard_outbox([again.id]) == 1
    assert store.outbox() == []


def test_an_entry_waiting_for_its_retry_holds_back_its_thread(store: Any, settings: Any) -> None:
    settings.CHATSTATE = {**getattr(settings, "CHATSTATE", {}), "OUTBOX_RETRY_DELAYS": (60,)}
    reply(store, "m1", "t", "first")
    reply(store, "m2", "t", "second")
    sender = Recorder(fail=1)
    assert store.dispatch_outbox(sender) == {"sent": 0, "retried": 1, "dead": 0}
    assert store.dispatch_outbox(sender) == {"sent": 0, "retried": 0, "dead": 0}
    assert [e.payload["text"] for e in store.outbox()] == ["first", "second"]


def test_two_dispatchers_never_take_one_threads_entries(store: Any) -> None:
    reply(store, "a1", "ta", "a1")
    reply(store, "a2", "ta", "a2")
    reply(store, "b1", "tb", "b1")
    taken: list[list[str]] = []

    def slow(entry: OutboxEntry) -> None:
        if not taken:  # the first dispatcher, inside its first send, runs a second one
            taken.append([])
            other = Recorder()
            store.dispatch_outbox(other)
            taken[0] = other.texts
        taken.append([entry.payload["text"]])

    assert store.dispatch_outbox(slow)["sent"] == 3
    assert taken[0] == []  # every thread was leased to the first dispatcher
    assert [t[0] for t in taken[1:]] == ["a1", "a2", "b1"]


def test_a_leased_entry_comes_back_after_the_lease(store: Any, settings: Any) -> None:
    # A lease long enough that a loaded machine's next dispatch still finds it running.
    settings.CHATSTATE = {**getattr(settings, "CHATSTATE", {}), "OUTBOX_LEASE": 1.0}
    reply(store, "m1")

    class Dies(BaseException):  # the dispatcher dies inside the sender
        pass

    def dies(entry: OutboxEntry) -> None:
        raise Dies

    with pytest.raises(Dies):
        store.dispatch_outbox(dies)
    sender = Recorder()
    assert store.dispatch_outbox(sender)["sent"] == 0  # still leased
    time.sleep(1.1)
    assert store.dispatch_outbox(sender)["sent"] == 1
    assert sender.sent[0].key == "slack:m1:0"


def test_a_dispatch_without_a_sender_is_refused(store: Any) -> None:
    with pytest.raises(ValueError, match="OUTBOX_SENDER"):
        store.dispatch_outbox()


def test_the_sender_setting_names_a_callable(store: Any, settings: Any) -> None:
    settings.CHATSTATE = {
        **getattr(settings, "CHATSTATE", {}),
        "OUTBOX_SENDER": "chatstate.testing.test_outbox.record_sent",
    }
    SENT.clear()
    reply(store, "m1")
    assert store.dispatch_outbox() == {"sent": 1, "retried": 0, "dead": 0}
    assert SENT == ["slack:m1:0"]


SENT: list[str] = []


def record_sent(entry: OutboxEntry) -> None:
    SENT.append(entry.key)


def test_drained_entries_send_at_their_checkpoints(store: Any) -> None:
    with (
        pytest.raises(Boom),
        store.handle_message(M, thread_id="t", owner="w0", strategy="queue") as msg,
    ):
        for n in (1, 2):
            assert store.lock("t", f"w{n}", "queue", {"n": n}) is LockResult.QUEUED
        msg.send({"text": "own"})
        for entry in msg.drain():
            msg.send({"text": f"entry {entry.metadata['n']}"})
            if entry.metadata["n"] == 2:
                raise Boom
    entries = store.outbox()
    assert [e.payload["text"] for e in entries] == ["own", "entry 1"]
    assert entries[0].key == "slack:m1:0"
    assert entries[1].key.startswith("queued:") and entries[1].key.endswith(":0")


@pytest.mark.usefixtures("transactional_db")
def test_the_async_cycle_sends_the_same(store: Any) -> None:
    async def cycle() -> list[OutboxEntry]:
        async with store.ahandle_message(M, thread_id="t", owner="w") as msg:
            msg.send({"text": "hi"})
        return await store.aoutbox()

    (entry,) = run_async(cycle)
    assert entry.payload == {"text": "hi"}
