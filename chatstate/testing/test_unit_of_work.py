"""One message, one unit of work: what a block stages commits with its claim, or not at all.

Everything a message does to the store -- its channel's map, its thread's subscription, its
history, other lists -- is staged in the cycle and written in the cycle's own commit (or a
drain checkpoint), atomically with the thread state, the claim marked done and the lock
release. A block that raises, or a commit that fails, leaves no trace of any of it; a
redelivery of a done message does none of it again.
"""

from __future__ import annotations

from typing import Any

import pytest

from chatstate import ChatStateError, LeaseLost, LockResult
from chatstate.testing.helpers import LEASE, outlive, run_async

M = ("slack", "m1")


class Boom(Exception):
    pass


def stage_everything(msg: Any, n: int = 1) -> None:
    msg.state["turns"] = msg.state.get("turns", 0) + 1
    msg.channel.incr("messages")
    msg.channel.add("threads", msg.thread_id)
    msg.channel.set("last", {"n": n})
    msg.subscribe()
    msg.history.append({"role": "user", "n": n})
    msg.append_to_list("user:U1", {"n": n}, max_length=200)


def test_a_commit_writes_everything_staged(store: Any) -> None:
    with store.handle_message(M, thread_id="t", owner="w", channel_id="c") as msg:
        assert msg.acquired and not msg.subscribed
        stage_everything(msg)
        assert msg.subscribed  # the staged value
        assert store.channel_state("c") == {} and not store.is_subscribed("t")  # not yet
        assert store.history("t") == [] and store.get_list("user:U1") == []
    assert store.thread_state("t") == {"turns": 1}
    assert store.channel_state("c") == {"messages": 1, "threads": ["t"], "last": {"n": 1}}
    assert store.is_subscribed("t")
    assert store.history("t") == [{"role": "user", "n": 1}]
    assert store.get_list("user:U1") == [{"n": 1}]


def test_a_block_that_raises_leaves_no_trace_and_the_redelivery_is_handled(store: Any) -> None:
    with (
        pytest.raises(Boom),
        store.handle_message(M, thread_id="t", owner="w", channel_id="c") as msg,
    ):
        stage_everything(msg)
        raise Boom
    assert store.channel_state("c") == {}
    assert not store.is_subscribed("t")
    assert store.history("t") == [] and store.get_list("user:U1") == []
    assert not store.is_duplicate(M)
    with store.handle_message(M, thread_id="t", owner="w2", channel_id="c") as again:
        assert again.acquired
        stage_everything(again)
    assert store.channel_state("c")["messages"] == 1
    assert store.history("t") == [{"role": "user", "n": 1}]


def test_a_commit_refused_leaves_no_trace(store: Any) -> None:
    with (
        pytest.raises(LeaseLost),
        store.handle_message(M, thread_id="t", owner="w", channel_id="c", ttl=LEASE) as msg,
    ):
        stage_everything(msg)
        outlive()
        assert store.lock("t", "usurper", ttl=60) is LockResult.ACQUIRED
    assert store.channel_state("c") == {} and not store.is_subscribed("t")
    assert store.history("t") == [] and store.get_list("user:U1") == []


def test_a_done_message_stages_nothing_again(store: Any) -> None:
    with store.handle_message(M, thread_id="t", owner="w", channel_id="c") as msg:
        stage_everything(msg)
    with store.handle_message(M, thread_id="t", owner="w2", channel_id="c") as again:
        assert again.duplicate
        for stage in (
            lambda: again.channel.incr("messages"),
            again.subscribe,
            lambda: again.history.append("x"),
            lambda: again.append_to_list("k", 1),
            lambda: again.send({"text": "hi"}),
        ):
            with pytest.raises(ChatStateError, match="does not hold its thread"):
                stage()
    assert store.channel_state("c")["messages"] == 1
    assert store.history("t") == [{"role": "user", "n": 1}]


def test_the_channel_needs_a_channel_id(store: Any) -> None:
    with store.handle_message(M, thread_id="t", owner="w") as msg:
        with pytest.raises(ValueError, match="channel_id"):
            msg.channel.incr("n")
        msg.state["ok"] = True
    assert store.thread_state("t") == {"ok": True}


def test_channel_operations_apply_in_order(store: Any) -> None:
    store.put_channel_state("c", {"kept": [1, {"a": 2}], "text": "x", "gone": 1, "n": 2})
    with store.handle_message(M, thread_id="t", owner="w", channel_id="c") as msg:
        ch = msg.channel
        ch.incr("n")
        ch.incr("n", 2.5)
        ch.incr("new")
        ch.incr("text", 3)  # not a number: counts as 0
        ch.delete("gone")
        ch.delete("never")
        ch.set("nested", {"list": [], "obj": {}, "s": "a/b"})
        for item in ("b", 2, None, True, "a", 1.0, False, 1, "b"):
            ch.add("tags", item)
        ch.discard("tags", "a")
        ch.discard("tags", 7)
        ch.discard("missing", 1)
        ch.add("kept", 0)  # not a list of scalars: only its scalars stay
        ch.set("then", 1)
        ch.delete("then")
    assert store.channel_state("c") == {
        "kept": [0, 1],
        "text": 3,
        "n": 5.5,
        "new": 1,
        "nested": {"list": [], "obj": {}, "s": "a/b"},
        "tags": [None, False, True, 1.0, 2, "b"],
    }


def test_one_increment_alone_counts_on_every_kind_of_value(store: Any) -> None:
    store.put_channel_state("c", {"int": 2, "float": 1.5, "text": "x", "big": 10**17, "neg": -3})
    steps = [("int", 1), ("float", 2), ("text", 3), ("big", 1), ("neg", -4), ("new", 5)]
    for i, (key, by) in enumerate([*steps, ("int", 10**16), ("float", 0.25)]):
        with store.handle_message(
            ("s", f"one-{i}"), thread_id="t", owner="w", channel_id="c"
        ) as msg:
            msg.channel.incr(key, by)
    with store.handle_message(("s", "fresh"), thread_id="t", owner="w", channel_id="new") as msg:
        msg.channel.incr("n")
    assert store.channel_state("c") == {
        "int": 3 + 10**16,
        "float": 3.75,
        "text": 3,
        "big": 10**17 + 1,
        "neg": -7,
        "new": 5,
    }
    assert store.channel_state("new") == {"n": 1}


def test_concurrent_cycles_of_one_channel_keep_each_others_operations(store: Any) -> None:
    first = store.handle_message(("s", "a"), thread_id="ta", owner="a", channel_id="c")
    second = store.handle_message(("s", "b"), thread_id="tb", owner="b", channel_id="c")
    a, b = first.__enter__(), second.__enter__()
    a.channel.incr("messages")
    a.channel.add("threads", "ta")
    b.channel.incr("messages")
    b.channel.add("threads", "tb")
    second.__exit__(None, None, None)
    first.__exit__(None, None, None)
    assert store.channel_state("c") == {"messages": 2, "threads": ["ta", "tb"]}


def test_a_refused_value_stages_nothing(store: Any) -> None:
    with store.handle_message(M, thread_id="t", owner="w", channel_id="c") as msg:
        with pytest.raises(TypeError, match=r"\$\['a'\]\[1\]"):
            msg.channel.set("k", {"a": [1, float("nan")]})
        with pytest.raises(TypeError, match="JSON scalar"):
            msg.channel.add("k", [1])
        with pytest.raises(TypeError):
            msg.channel.incr("k", "1")
        with pytest.raises(TypeError):
            msg.history.append({"x": "\x00"})
        with pytest.raises(TypeError):
            msg.append_to_list("k", {1, 2})
        with pytest.raises(ValueError):
            msg.append_to_list("", 1)
        with pytest.raises(ValueError):
            msg.append_to_list("k", 1, max_length=0)
        msg.channel.incr("ok")
    assert store.channel_state("c") == {"ok": 1}
    assert store.history("t") == [] and store.get_list("k") == []


def test_unsubscribe_is_staged_too(store: Any) -> None:
    store.subscribe("t")
    with store.handle_message(M, thread_id="t", owner="w") as msg:
        assert msg.subscribed
        msg.unsubscribe()
        assert not msg.subscribed and store.is_subscribed("t")
    assert not store.is_subscribed("t")


def test_the_entry_step_reads_the_newest_history(store: Any) -> None:
    for n in range(5):
        store.append_to_list("history:t", n)
    assert store.history("t") == [0, 1, 2, 3, 4]
    assert store.history("t", limit=2) == [3, 4]
    with store.handle_message(M, thread_id="t", owner="w", history=3) as msg:
        assert msg.history.items == [2, 3, 4]
        msg.history.append(5)
        assert msg.history.items == [2, 3, 4, 5]
    with store.handle_message(("s", "m2"), thread_id="t", owner="w") as msg:
        assert msg.history.items == []  # history=0: nothing read
    assert store.history("t", limit=3) == [3, 4, 5]


def test_history_keeps_the_newest_history_limit_items(
    store: Any, make_store: Any, settings: Any
) -> None:
    settings.CHATSTATE = {**getattr(settings, "CHATSTATE", {}), "HISTORY_LIMIT": 3}
    capped = make_store()
    for n in range(5):
        with capped.handle_message(("s", f"m{n}"), thread_id="t", owner="w") as msg:
            msg.history.append(n)
    assert capped.history("t") == [2, 3, 4]


def test_lists_keep_their_newest_items_and_expire(store: Any) -> None:
    for n in range(4):
        store.append_to_list("k", {"n": n}, max_length=3)
    assert store.get_list("k") == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert store.get_list("k", limit=1) == [{"n": 3}]
    assert store.get_list("k", limit=10) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert store.get_list("none") == []
    store.append_to_list("short", 1, ttl=LEASE)
    store.append_to_list("short", 2)  # no ttl: the expiry stays
    assert store.get_list("short") == [1, 2]
    outlive()
    assert store.get_list("short") == []
    store.append_to_list("short", 3)  # an expired list starts over
    assert store.get_list("short") == [3]
    assert store.delete_list("k") == 3
    assert store.get_list("k") == [] and store.delete_list("k") == 0


def test_a_list_keeps_the_newest_max_length_of_each_append(store: Any) -> None:
    """Each append trims to its own max_length, whatever earlier appends kept."""
    for n in range(6):
        store.append_to_list("k", n)  # no max: all kept
    store.append_to_list("k", 6, max_length=4)  # a max at last: three older items go
    assert store.get_list("k") == [3, 4, 5, 6]
    store.append_to_list("k", 7, max_length=4)  # steady: one goes
    assert store.get_list("k") == [4, 5, 6, 7]
    store.append_to_list("k", 8, max_length=2)  # a smaller max
    assert store.get_list("k") == [7, 8]
    for n in (9, 10):
        store.append_to_list("k", n, max_length=3)  # a larger max: the list grows back
    assert store.get_list("k") == [8, 9, 10]
    store.append_to_list("k", 11, max_length=1)
    assert store.get_list("k") == [11]


def test_a_long_capped_list_shows_only_what_it_keeps(store: Any) -> None:
    """Trimmed items stay out of reads, counts and snapshots, however the store deletes them."""
    for n in range(37):
        store.append_to_list("k", n, max_length=5)
    kept = [32, 33, 34, 35, 36]
    assert store.get_list("k") == kept
    assert store.get_list("k", limit=2) == [35, 36]
    assert store.snapshot().lists["k"]["items"] == kept
    assert store.delete_list("k") == 5
    assert store.get_list("k") == []


def test_each_append_renews_the_ttl(store: Any) -> None:
    # Three pauses outlast the ttl; each append comes well within it (a loaded machine took
    # over 0.25 s for one of them when the ttl was 0.5 s).
    store.append_to_list("k", 1, ttl=1.5)
    for n in range(3):
        __import__("time").sleep(0.6)
        store.append_to_list("k", n, ttl=1.5)
    assert len(store.get_list("k")) == 4


def test_bad_list_arguments_change_nothing(store: Any) -> None:
    with pytest.raises(TypeError):
        store.append_to_list(1, "x")
    with pytest.raises(ValueError):
        store.append_to_list("k" * 321, "x")
    with pytest.raises(TypeError, match=r"\$\[0\]"):
        store.append_to_list("k", [float("inf")])
    with pytest.raises(ValueError):
        store.append_to_list("k", 1, ttl=0)
    with pytest.raises(ValueError):
        store.get_list("k", limit=0)
    assert store.get_list("k") == []


def test_each_drained_entry_commits_its_effects_at_its_checkpoint(store: Any) -> None:
    with (
        pytest.raises(Boom),
        store.handle_message(M, thread_id="t", owner="w0", strategy="queue", channel_id="c") as msg,
    ):
        for n in (1, 2, 3):
            store.lock("t", f"w{n}", "queue", {"n": n})
        msg.channel.incr("messages")
        msg.history.append(0)
        for entry in msg.drain():
            n = entry.metadata["n"]
            msg.channel.incr("messages")
            msg.history.append(n)
            msg.append_to_list("seen", n)
            if n == 2:
                raise Boom  # entry 2's effects are dropped; 0 and 1's are kept
    assert store.channel_state("c") == {"messages": 2}
    assert store.history("t") == [0, 1]
    assert store.get_list("seen") == [1]
    assert [e["metadata"]["n"] for e in store.snapshot().pending_locks["t"]] == [2, 3]


@pytest.mark.usefixtures("transactional_db")
def test_the_async_cycle_stages_the_same(store: Any) -> None:
    async def cycle() -> list[Any]:
        async with store.ahandle_message(
            M, thread_id="t", owner="w", channel_id="c", history=5
        ) as msg:
            stage_everything(msg)
        await store.aappend_to_list("k", "v")
        return [
            await store.ahistory("t"),
            await store.aget_list("k"),
            await store.adelete_list("k"),
        ]

    assert run_async(cycle) == [[{"role": "user", "n": 1}], ["v"], 1]
    assert store.channel_state("c")["messages"] == 1
    assert store.is_subscribed("t")


def test_prune_removes_expired_lists(store: Any) -> None:
    store.append_to_list("short", 1, ttl=LEASE)
    store.append_to_list("kept", 1)
    outlive()
    assert store.prune(dry_run=True)["lists_expired"] == 1
    assert store.prune()["lists_expired"] == 1
    assert store.prune()["lists_expired"] == 0
    assert store.get_list("short") == [] and store.get_list("kept") == [1]
