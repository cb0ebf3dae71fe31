"""Claims in snapshots (format version 2): a message being handled when the snapshot is taken
is still being handled after a restore -- its redelivery is a duplicate in progress while the
claim's lease runs, and is handled once it has run out -- and a message whose claim was
released (refused by a busy thread) is handled when redelivered, before and after."""

from __future__ import annotations

from typing import Any

import pytest

from chatstate import LockResult, Snapshot
from chatstate.snapshots.sections import SnapshotSections
from chatstate.testing.helpers import clone_options

PAST = "2001-01-01T00:00:00.000000Z"
FUTURE = "2099-01-01T00:00:00.000000Z"


def restored(store: Any, make_store: Any, request: pytest.FixtureRequest, snap: Any) -> Any:
    """A new adapter of ``store``'s backend in a fresh namespace, holding ``snap``."""
    adapter = type(store).from_snapshot(snap, **clone_options(store, make_store().namespace))
    if hasattr(adapter, "clear"):
        request.addfinalizer(adapter.clear)
    return adapter


def claimed(dedupe: list[tuple[str, str]], claims: dict[Any, Any]) -> Snapshot:
    return Snapshot(dedupe=set(dedupe), dedupe_order=dedupe, claims=claims)


def test_a_message_being_handled_is_a_claim_of_the_snapshot(store: Any) -> None:
    with store.handle_message(("s", "m1"), thread_id="t", owner="w1", ttl=60) as msg:
        assert msg.acquired
        snap = store.snapshot()
    assert ("s", "m1") in snap.dedupe and snap.dedupe_order == [("s", "m1")]
    assert list(snap.claims) == [("s", "m1")]
    claim = snap.claims[("s", "m1")]
    assert (claim["owner"], claim["thread_id"]) == ("w1", "t")
    assert claim["expires_at"].endswith("Z")
    assert store.snapshot().claims == {}  # the commit marked it done


def test_streamed_sections_carry_the_same_claims(store: Any) -> None:
    store.claim_dedupe(("s", "done"))
    with store.handle_message(("s", "m1"), thread_id="t", owner="w1", ttl=60):
        whole = store.snapshot()
        with store.snapshot_sections() as sections:
            assert sections.counts["claims"] == 1
            streamed = sections.to_snapshot()
    assert streamed == whole and list(streamed.claims) == [("s", "m1")]


def test_a_released_claim_is_left_out_so_its_redelivery_is_handled(
    store: Any, make_store: Any, request: pytest.FixtureRequest
) -> None:
    store.lock("t", "holder", "reject")
    with store.handle_message(("s", "m1"), thread_id="t", owner="w1", strategy="reject") as msg:
        assert msg.result is LockResult.BUSY
    snap = store.snapshot()
    assert snap.dedupe == set() and snap.claims == {}
    copy = restored(store, make_store, request, snap)
    with copy.handle_message(("s", "m1"), thread_id="t2", owner="w2") as msg:
        assert not msg.duplicate and msg.acquired


def test_a_restored_live_claim_keeps_its_redelivery_waiting(
    store: Any, make_store: Any, request: pytest.FixtureRequest
) -> None:
    claim = {"owner": "w1", "thread_id": "t", "expires_at": FUTURE}
    copy = restored(store, make_store, request, claimed([("s", "m1")], {("s", "m1"): claim}))
    assert copy.snapshot().claims == {("s", "m1"): claim}  # the exact text is kept
    assert copy.is_duplicate(("s", "m1"))
    with copy.handle_message(("s", "m1"), thread_id="t", owner="w2") as msg:
        assert msg.duplicate and msg.in_progress


def test_a_restored_claim_whose_lease_ran_out_is_handled_on_redelivery(
    store: Any, make_store: Any, request: pytest.FixtureRequest
) -> None:
    claim = {"owner": "w1", "thread_id": "t", "expires_at": PAST}
    copy = restored(store, make_store, request, claimed([("s", "m1")], {("s", "m1"): claim}))
    assert not copy.is_duplicate(("s", "m1"))
    with copy.handle_message(("s", "m1"), thread_id="t", owner="w2") as msg:
        assert not msg.duplicate and msg.acquired
        msg.state["by"] = "w2"
    assert copy.thread_state("t") == {"by": "w2"}
    assert copy.snapshot().claims == {}


def test_a_streamed_load_stores_the_claims(store: Any) -> None:
    claim = {"owner": "w1", "thread_id": "t", "expires_at": FUTURE}
    snap = claimed([("s", "m0"), ("s", "m1")], {("s", "m1"): claim})
    store.load_snapshot_stream(SnapshotSections.from_snapshot(snap))
    assert store.snapshot() == snap


def test_merge_keeps_what_a_present_key_is_and_adds_new_claims(store: Any) -> None:
    store.claim_dedupe(("s", "done"))
    live = {"owner": "w1", "thread_id": "t", "expires_at": FUTURE}
    incoming = claimed([("s", "done"), ("s", "new")], {("s", "done"): live, ("s", "new"): live})
    store.load_snapshot(incoming, merge=True)
    snap = store.snapshot()
    assert snap.dedupe_order == [("s", "done"), ("s", "new")]
    assert snap.claims == {("s", "new"): live}  # "done" stays done: a duplicate stays one
