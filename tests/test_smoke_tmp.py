from chatstate import LockResult


def test_smoke(store):
    assert store.lock("t", "a") == LockResult.ACQUIRED
    assert store.lock("t", "b", "queue", {"m": 1}) == LockResult.QUEUED
    assert [e.owner for e in store.release_lock("t", "a")] == ["b"]
    assert store.claim_dedupe(("s", "1"), 2)
    assert not store.claim_dedupe(("s", "1"), 2)
    store.mark_dedupe(("s", "2"), 2)
    store.mark_dedupe(("s", "3"), 2)
    assert not store.is_duplicate(("s", "1"))
    with store.handle_message(("s", "4"), thread_id="t", owner="w", strategy="queue") as msg:
        assert msg.result == LockResult.ACQUIRED
        msg.state["n"] = 1
    assert store.thread_state("t") == {"n": 1}
    snap = store.snapshot()
    assert snap.dedupe_order == [("s", "2"), ("s", "3"), ("s", "4")]
    store.subscribe("x"); store.subscribe("x")
    assert store.is_subscribed("x")
    assert store.update_thread_state("t", lambda s: {**s, "n": s["n"] + 1}) == {"n": 2}
