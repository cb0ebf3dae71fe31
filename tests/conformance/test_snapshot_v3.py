"""Snapshot version 3 on every backend: exports carry empty ``lists`` and ``outbox``
sections (no backend stores them yet), and a load holding any is refused whole — a
``ValueError`` naming why, nothing changed — by the one place each backend will store them
(``load_lists_and_outbox``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatstate import Snapshot
from chatstate.sections import SnapshotSections
from tests.conformance.helpers import populate

T = "2030-01-02T03:04:05Z"
LISTS = {"history:t1": {"items": [{"role": "user", "text": "hi"}], "expires_at": None}}
OUTBOX = [
    {"key": "r1", "thread_id": "t1", "payload": {"text": "hello"}, "attempts": 0,
     "dead": False, "created_at": T},
]  # fmt: skip
NOT_YET = "this backend does not store lists/outbox yet"


def test_an_export_is_version_3_with_empty_lists_and_outbox(store: Any) -> None:
    populate(store)
    snapshot = store.snapshot()
    assert (snapshot.lists, snapshot.outbox) == ({}, [])
    data = json.loads(snapshot.to_json())
    assert (data["version"], data["lists"], data["outbox"]) == (3, {}, [])
    with store.snapshot_sections() as sections:
        assert (list(sections.lists), list(sections.outbox)) == ([], [])


@pytest.mark.parametrize("merge", [False, True])
@pytest.mark.parametrize("extra", [{"lists": LISTS}, {"outbox": OUTBOX}], ids=["lists", "outbox"])
def test_a_load_holding_lists_or_outbox_is_refused_whole(
    store: Any, extra: dict[str, Any], merge: bool
) -> None:
    populate(store)
    before = store.snapshot()
    incoming = Snapshot(subscriptions={"new"}, thread_state={"t9": {"n": 9}}, **extra)
    with pytest.raises(ValueError, match=NOT_YET):
        store.load_snapshot(incoming, merge=merge)
    assert store.snapshot() == before
    with pytest.raises(ValueError, match=NOT_YET):
        store.load_snapshot_stream(SnapshotSections.from_snapshot(incoming), merge)
    assert store.snapshot() == before


def test_a_load_with_empty_lists_and_outbox_works(store: Any) -> None:
    incoming = Snapshot(subscriptions={"new"}, thread_state={"t9": {"n": 9}})
    store.load_snapshot({**incoming.to_dict(), "lists": {}, "outbox": []})
    assert store.snapshot() == incoming
