"""Snapshot version 3 on every backend: capped lists (thread histories among them) and the
outbox are exported and loaded exactly -- a round trip snapshot → load → snapshot gives the
same JSON text, list items in order, expiries and outbox times as given, outbox entries in
commit order with their attempts and dead flag -- whole or streamed, replacing or merging
(docs/snapshots.rst, "Lists and the outbox on the backends")."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chatstate import Snapshot
from chatstate.snapshots.sections import SECTIONS, SnapshotSections
from chatstate.testing.helpers import clone_options, outlive, populate

FUTURE = "2099-01-02T03:04:05.123456Z"
LATER = "2098-06-07T08:09:10.654321Z"
PAST = "2001-01-01T00:00:00.000000Z"
T0 = "2024-05-01T12:00:00.500000Z"
T1 = "2024-05-01T12:00:01.250001Z"
T2 = "2024-05-01T12:05:00.999999Z"


def entry(key: str, thread: str = "t1", **extra: Any) -> dict[str, Any]:
    return {"key": key, "thread_id": thread, "payload": {"text": f"re {key}"}, "attempts": 0,
            "dead": False, "created_at": T0, "due_at": T0, **extra}  # fmt: skip


def sample() -> Snapshot:
    """Histories, a user list with an expiry and one without, an outbox with a retried entry
    and a dead one; timestamps in the canonical form."""
    return Snapshot(
        subscriptions={"t1"},
        thread_state={"t1": {"turns": 2}},
        lists={
            "history:t1": {
                "items": [{"role": "user", "text": "hi"}, {"role": "bot", "text": "hello"}],
                "expires_at": None,
            },
            "history:t2": {"items": [{"role": "user", "text": "é ✓ 𝄞"}], "expires_at": FUTURE},
            "user:U1": {
                "items": [1, 2.5, "three", None, True, [4], {"n": {"m": 5}}],
                "expires_at": LATER,
            },
            "z-list": {"items": [0], "expires_at": None},
        },  # fmt: skip
        outbox=[
            entry("r1", created_at=T0, due_at=T0),
            entry("r2", "t2", attempts=3, created_at=T1, due_at=T2),
            entry("r3", attempts=10, dead=True, created_at=T1, due_at=T2),
            entry("r4", "t2", payload=["any", {"json": None}], created_at=T2, due_at=T2),
        ],
    )


def read_out(sections: SnapshotSections) -> SnapshotSections:
    """``sections`` with every section read (a database stream cannot feed a load on its own
    connection while it is read)."""
    data = {name: list(getattr(sections, name)) for name in SECTIONS}
    return SnapshotSections(**data, counts=dict(sections.counts))


def restored(store: Any, make_store: Any, request: pytest.FixtureRequest, snap: Any) -> Any:
    """A new adapter of ``store``'s backend in a fresh namespace, holding ``snap``."""
    adapter = type(store).from_snapshot(snap, **clone_options(store, make_store().namespace))
    if hasattr(adapter, "clear"):
        request.addfinalizer(adapter.clear)
    return adapter


def fresh(store: Any, make_store: Any, request: pytest.FixtureRequest) -> Any:
    """An empty adapter of ``store``'s backend in a fresh namespace."""
    return restored(store, make_store, request, Snapshot())


@pytest.fixture
def fast_retries(settings: Any) -> None:
    settings.CHATSTATE = {
        **getattr(settings, "CHATSTATE", {}),
        "OUTBOX_RETRY_DELAYS": (0,),
        "OUTBOX_MAX_ATTEMPTS": 2,
    }


def converse(store: Any) -> None:
    """Histories and replies written by message cycles, a user list with and one without an
    expiry; of the outbox, t2's reply sent, t1's first dead after two attempts, its second
    retried once."""
    for n, (thread, text) in enumerate([("t1", "hi"), ("t2", "hey"), ("t1", "again")]):
        with store.handle_message(("s", f"m{n}"), thread_id=thread, owner=f"w{n}") as msg:
            assert msg.acquired
            msg.history.append({"role": "user", "text": text, "n": n})
            msg.history.append({"role": "bot", "text": f"re {text}"})
            msg.append_to_list("user:U1", {"said": text}, max_length=2)
            msg.send({"text": f"re {text}"})
    store.append_to_list("tmp:U2", "soon gone", ttl=3600)

    def fail(entry: Any) -> None:
        if entry.thread_id == "t1":
            raise RuntimeError("the platform is down")

    assert store.dispatch_outbox(fail) == {"sent": 1, "retried": 1, "dead": 0}
    assert store.dispatch_outbox(fail) == {"sent": 0, "retried": 1, "dead": 1}


# -- export ----------------------------------------------------------------------------------


def test_an_export_carries_lists_and_the_outbox(store: Any, fast_retries: None) -> None:
    converse(store)
    snap = store.snapshot()
    assert snap.lists["history:t1"] == {
        "items": [
            {"role": "user", "text": "hi", "n": 0},
            {"role": "bot", "text": "re hi"},
            {"role": "user", "text": "again", "n": 2},
            {"role": "bot", "text": "re again"},
        ],
        "expires_at": None,
    }
    assert snap.lists["user:U1"] == {"items": [{"said": "hey"}, {"said": "again"}],
                                     "expires_at": None}  # fmt: skip
    assert snap.lists["tmp:U2"]["items"] == ["soon gone"]
    assert snap.lists["tmp:U2"]["expires_at"].endswith("Z")
    assert sorted(snap.lists) == ["history:t1", "history:t2", "tmp:U2", "user:U1"]
    (dead, left) = snap.outbox
    assert (dead["key"], dead["thread_id"], dead["payload"]) == ("s:m0:0", "t1", {"text": "re hi"})
    assert (dead["attempts"], dead["dead"]) == (2, True)
    assert (left["key"], left["attempts"], left["dead"]) == ("s:m2:0", 1, False)
    assert all(e["created_at"].endswith("Z") and e["due_at"].endswith("Z") for e in snap.outbox)
    assert [e.key for e in store.outbox()] == [e["key"] for e in snap.outbox]


def test_streamed_sections_carry_the_same_lists_and_outbox(store: Any, fast_retries: None) -> None:
    converse(store)
    whole = store.snapshot()
    with store.snapshot_sections() as sections:
        assert (sections.counts["lists"], sections.counts["outbox"]) == (4, 2)
        lists, outbox = list(sections.lists), list(sections.outbox)
    assert lists == sorted(whole.lists.items()) and outbox == whole.outbox


def test_an_expired_list_is_not_exported(store: Any) -> None:
    store.append_to_list("short", "x", ttl=1.0)
    store.append_to_list("long", "y", ttl=60)
    assert sorted(store.snapshot().lists) == ["long", "short"]
    outlive(1.0)
    assert sorted(store.snapshot().lists) == ["long"]
    with store.snapshot_sections() as sections:
        assert sections.counts["lists"] == 1
        assert [key for key, _ in sections.lists] == ["long"]


# -- round trips -----------------------------------------------------------------------------


def test_a_round_trip_of_a_backend_snapshot_is_exact(
    store: Any, make_store: Any, request: pytest.FixtureRequest, fast_retries: None
) -> None:
    populate(store)
    converse(store)
    text = store.snapshot().to_json()
    copy_ = restored(store, make_store, request, Snapshot.from_json(text))
    assert copy_.snapshot().to_json() == text
    store.load_snapshot(Snapshot.from_json(text))  # into the store it came from
    assert store.snapshot().to_json() == text


def test_a_loaded_snapshot_is_held_exactly(
    store: Any, make_store: Any, request: pytest.FixtureRequest
) -> None:
    copy_ = restored(store, make_store, request, sample())
    assert copy_.snapshot().to_json() == sample().to_json()
    with copy_.snapshot_sections() as sections:
        assert sections.to_snapshot().to_json() == sample().to_json()


def test_a_streamed_round_trip_is_exact(
    store: Any, make_store: Any, request: pytest.FixtureRequest, fast_retries: None
) -> None:
    converse(store)
    text = store.snapshot().to_json()
    target = fresh(store, make_store, request)
    target.append_to_list("other", "gone after the replace")
    with store.snapshot_sections() as sections:
        streamed = read_out(sections)
    target.load_snapshot_stream(streamed)
    assert target.snapshot().to_json() == text
    merged = fresh(store, make_store, request)
    with store.snapshot_sections() as sections:
        streamed = read_out(sections)
    merged.load_snapshot_stream(streamed, merge=True)
    assert merged.snapshot().to_json() == text


def test_loaded_lists_and_outbox_work_as_written_ones(
    store: Any, make_store: Any, request: pytest.FixtureRequest
) -> None:
    """Lists read, append (numbering goes on after the loaded items) and trim; the outbox
    lists, claims in commit order, skips the dead entry and requeues it."""
    copy_ = restored(store, make_store, request, sample())
    assert copy_.history("t1", limit=1) == [{"role": "bot", "text": "hello"}]
    assert copy_.get_list("user:U1", limit=2) == [[4], {"n": {"m": 5}}]
    copy_.append_to_list("history:t1", {"role": "user", "text": "more"}, max_length=2)
    assert copy_.history("t1") == [{"role": "bot", "text": "hello"},
                                   {"role": "user", "text": "more"}]  # fmt: skip
    with copy_.handle_message(("s", "m9"), thread_id="t1", owner="w", history=10) as msg:
        assert msg.history.items[-1] == {"role": "user", "text": "more"}
        msg.history.append({"role": "bot", "text": "ok"})
    assert copy_.history("t1") == [{"role": "bot", "text": "hello"},
                                   {"role": "user", "text": "more"},
                                   {"role": "bot", "text": "ok"}]  # fmt: skip
    entries = copy_.outbox()
    assert [(e.key, e.attempts, e.dead) for e in entries] == [
        ("r1", 0, False), ("r2", 3, False), ("r3", 10, True), ("r4", 0, False)
    ]  # fmt: skip
    assert [e.key for e in copy_.outbox("t2")] == ["r2", "r4"]
    sent: list[str] = []
    assert copy_.dispatch_outbox(lambda e: sent.append(e.key)) == {"sent": 3, "retried": 0,
                                                                   "dead": 0}  # fmt: skip
    assert sent == ["r1", "r2", "r4"]
    (dead,) = copy_.outbox()
    assert copy_.requeue_outbox([dead.id]) == 1
    assert copy_.dispatch_outbox(lambda e: sent.append(e.key))["sent"] == 1
    assert sent[-1] == "r3" and copy_.outbox() == []


def test_a_loaded_expired_list_reads_empty_and_starts_over(
    store: Any, make_store: Any, request: pytest.FixtureRequest
) -> None:
    snap = Snapshot(lists={"old": {"items": [1, 2], "expires_at": PAST},
                           "new": {"items": [3], "expires_at": FUTURE}})  # fmt: skip
    copy_ = restored(store, make_store, request, snap)
    assert copy_.get_list("old") == [] and copy_.get_list("new") == [3]
    assert copy_.snapshot().lists == {"new": {"items": [3], "expires_at": FUTURE}}
    copy_.append_to_list("old", 9)
    assert copy_.snapshot().lists["old"] == {"items": [9], "expires_at": None}


def test_an_expiry_kept_until_an_append_renews_it(
    store: Any, make_store: Any, request: pytest.FixtureRequest
) -> None:
    copy_ = restored(store, make_store, request, sample())
    copy_.append_to_list("user:U1", "kept")  # no ttl: the expiry stays as given
    assert copy_.snapshot().lists["user:U1"]["expires_at"] == LATER
    copy_.append_to_list("history:t2", "renewed", ttl=60)
    renewed = copy_.snapshot().lists["history:t2"]["expires_at"]
    assert renewed != FUTURE and renewed < FUTURE and renewed.endswith("Z")


# -- replace and merge -----------------------------------------------------------------------


def test_a_replace_removes_the_namespaces_lists_and_outbox_first(
    store: Any, fast_retries: None
) -> None:
    converse(store)
    incoming = Snapshot(lists={"history:t1": {"items": ["only"], "expires_at": None}},
                        outbox=[entry("s:m2:0", "t9")])  # fmt: skip
    store.load_snapshot(incoming)
    assert store.snapshot().to_json() == incoming.to_json()
    assert store.get_list("user:U1") == [] and store.history("t2") == []
    assert [(e.key, e.thread_id) for e in store.outbox()] == [("s:m2:0", "t9")]
    store.load_snapshot(Snapshot())
    assert store.snapshot() == Snapshot() and store.outbox() == []


def merge_incoming() -> Snapshot:
    return Snapshot(
        lists={
            "history:t1": {"items": ["replaced"], "expires_at": FUTURE},
            "user:U1": {"items": [], "expires_at": None},  # empty: the list goes
            "gone": {"items": [1], "expires_at": PAST},  # expired: the list goes
            "new": {"items": [{"n": 1}], "expires_at": None},
        },
        outbox=[
            entry("r9", "t1", attempts=1),
            entry("r2", "t2", payload="not this one"),  # its key is there: the one there stays
            entry("r8", "t3", dead=True, attempts=5),
        ],
    )


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_merge_replaces_lists_by_key_and_appends_new_outbox_entries(
    store: Any, make_store: Any, request: pytest.FixtureRequest, streamed: bool
) -> None:
    base = sample()
    base.lists["gone"] = {"items": ["was here"], "expires_at": None}
    target = restored(store, make_store, request, base)
    if streamed:
        target.load_snapshot_stream(SnapshotSections.from_snapshot(merge_incoming()), True)
    else:
        target.load_snapshot(merge_incoming(), merge=True)
    expected = copy.deepcopy(sample())
    expected.lists["history:t1"] = {"items": ["replaced"], "expires_at": FUTURE}
    del expected.lists["user:U1"]
    expected.lists["new"] = {"items": [{"n": 1}], "expires_at": None}
    expected.outbox += [merge_incoming().outbox[0], merge_incoming().outbox[2]]
    assert target.snapshot().to_json() == expected.to_json()
    assert target.get_list("gone") == [] and target.get_list("user:U1") == []
    assert [e.key for e in target.outbox()] == ["r1", "r2", "r3", "r4", "r9", "r8"]
    assert target.outbox("t2")[0].payload == {"text": "re r2"}


def test_merge_into_an_empty_store_equals_replace(
    store: Any, make_store: Any, request: pytest.FixtureRequest
) -> None:
    target = fresh(store, make_store, request)
    target.load_snapshot(sample(), merge=True)
    assert target.snapshot().to_json() == sample().to_json()
    target.load_snapshot(sample(), merge=True)  # again: lists replaced, no entry twice
    assert target.snapshot().to_json() == sample().to_json()


def test_merge_after_commits_appends_after_the_committed_entries(
    store: Any, fast_retries: None
) -> None:
    converse(store)
    before = [e.key for e in store.outbox()]
    store.load_snapshot(Snapshot(outbox=[entry("late-1"), entry("late-2", "t2")]), merge=True)
    assert [e.key for e in store.outbox()] == [*before, "late-1", "late-2"]
    with store.handle_message(("s", "after"), thread_id="t2", owner="w") as msg:
        msg.send({"text": "newest"})
    assert [e.key for e in store.outbox()][-1] == "s:after:0"


def test_a_loaded_entry_never_takes_an_id_used_before(store: Any) -> None:
    """A dispatcher still holding the id of an entry a replace removed cannot touch the
    entry loaded in its place."""
    with store.handle_message(("s", "m1"), thread_id="t1", owner="w") as msg:
        msg.send({"text": "before"})
    (old,) = store.outbox()
    store.load_snapshot(Snapshot(outbox=[entry("loaded")]))
    (new,) = store.outbox()
    assert new.id != old.id
    assert store.discard_outbox([old.id]) == 0 and store.requeue_outbox([old.id]) == 0
    assert [e.key for e in store.outbox()] == ["loaded"]


# -- all or nothing --------------------------------------------------------------------------


@pytest.mark.parametrize("merge", [False, True], ids=["replace", "merge"])
def test_a_load_failing_in_the_outbox_changes_nothing(store: Any, merge: bool) -> None:
    store.load_snapshot(sample())
    before = store.snapshot().to_json()
    incoming = merge_incoming()
    sections = SnapshotSections.from_snapshot(incoming)

    def broken() -> Any:
        yield incoming.outbox[0]
        raise RuntimeError("load failed midway")

    sections.outbox = broken()
    with pytest.raises(RuntimeError, match="midway"):
        store.load_snapshot_stream(sections, merge)
    assert store.snapshot().to_json() == before


def test_a_load_with_empty_lists_and_outbox_works(store: Any) -> None:
    incoming = Snapshot(subscriptions={"new"}, thread_state={"t9": {"n": 9}})
    store.load_snapshot({**incoming.to_dict(), "lists": {}, "outbox": []})
    assert store.snapshot() == incoming


def test_attempts_stay_exact_up_to_64_bits_through_claims_and_releases(
    store: Any, make_store: Any, request: pytest.FixtureRequest
) -> None:
    """The format carries attempts below 2**63; every backend keeps them exactly, also after
    a dispatcher claimed an entry and released it untouched (its thread's earlier entry
    failed)."""
    huge = [entry("a", attempts=0), entry("b", attempts=2**63 - 1),
            entry("c", "t2", attempts=10**14 + 1, dead=True)]  # fmt: skip
    copy_ = restored(store, make_store, request, Snapshot(outbox=huge))
    assert copy_.snapshot().outbox == huge

    def fail(entry: Any) -> None:
        raise RuntimeError("down")

    assert copy_.dispatch_outbox(fail) == {"sent": 0, "retried": 1, "dead": 0}
    assert [e["attempts"] for e in copy_.snapshot().outbox] == [1, 2**63 - 1, 10**14 + 1]
    assert [e.attempts for e in copy_.outbox()] == [1, 2**63 - 1, 10**14 + 1]


def test_json_null_items_and_payloads_are_kept(
    store: Any, make_store: Any, request: pytest.FixtureRequest
) -> None:
    store.append_to_list("k", None)
    with store.handle_message(("s", "m1"), thread_id="t", owner="w") as msg:
        msg.history.append(None)
        msg.send(None, key="nothing")
    assert store.get_list("k") == [None] and store.history("t") == [None]
    assert store.outbox()[0].payload is None
    text = store.snapshot().to_json()
    assert '"k":{"expires_at":null,"items":[null]}' in text and '"payload":null' in text
    copy_ = restored(store, make_store, request, Snapshot.from_json(text))
    assert copy_.snapshot().to_json() == text
