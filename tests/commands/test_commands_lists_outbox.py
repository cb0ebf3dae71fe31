"""``chatstate_snapshot`` / ``chatstate_restore`` on a namespace holding capped lists (thread
histories among them) and an outbox: the file carries them exactly, a restore (replace,
``--merge``) stores them, ``--dry-run`` counts what would change and changes nothing. Runs on
the run's database adapter (SQLite/MariaDB: the ORM; PostgreSQL: ``COPY``), and on the Redis
adapter in the PostgreSQL run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from chatstate.snapshots.snapshot import Snapshot
from tests.commands.test_commands_restore import restore, write
from tests.commands.test_commands_snapshot import namespace, run

pytestmark = pytest.mark.django_db(transaction=True)

T0 = "2030-01-02T03:04:05.123456Z"
T1 = "2030-01-02T03:09:05.000001Z"
FUTURE = "2099-01-01T00:00:00.250000Z"


def entry(key: str, thread: str = "t1", **extra: Any) -> dict[str, Any]:
    return {"key": key, "thread_id": thread, "payload": {"text": key}, "attempts": 0,
            "dead": False, "created_at": T0, "due_at": T0, **extra}  # fmt: skip


BASE = Snapshot(
    lists={"user:old": {"items": ["a", {"b": [1, 2]}], "expires_at": FUTURE}},
    outbox=[entry("dead-1", attempts=4, dead=True, due_at=T1)],
)


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.run_on("postgresql"))])
def adapter(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A factory of adapters of the backend the commands run on, each in a fresh namespace."""
    if request.param == "database":
        from chatstate.adapters.database import DatabaseStateAdapter

        yield lambda: DatabaseStateAdapter(namespace=namespace())
        return
    from chatstate.adapters.redis import RedisStateAdapter

    options = {"alias": "chatstate"}
    made: list[Any] = []

    def make() -> Any:
        made.append(RedisStateAdapter(namespace=namespace(), **options))
        return made[-1]

    settings = {"ADAPTER": "chatstate.adapters.redis.RedisStateAdapter", "OPTIONS": options}
    with override_settings(CHATSTATE=settings):
        yield make
    for store in made:
        store.clear()


def fill(store: Any) -> Any:
    """A dead outbox entry and a list with an expiry from a snapshot, then histories, user
    lists and replies written by the backend's own message cycles."""
    store.load_snapshot(BASE)
    for n, thread in enumerate(["t1", "t-é", "t1"]):
        with store.handle_message(("s", f"m{n}"), thread_id=thread, owner=f"w{n}") as msg:
            msg.history.append({"role": "user", "text": f"hi ✓ {n}", "tab": "\t\\N"})
            msg.append_to_list("user:U1", n, max_length=2)
            msg.send({"text": f"re {n}"})
    store.append_to_list("tmp:U2", None, ttl=3600)
    return store


def export(store: Any, path: Path) -> bytes:
    run("chatstate_snapshot", "--namespace", store.namespace, "--output", str(path))
    return path.read_bytes()


def test_the_commands_carry_lists_and_the_outbox_exactly(tmp_path: Path, adapter: Any) -> None:
    source = fill(adapter())
    text = export(source, tmp_path / "a.json")
    snap = Snapshot.from_json(text)
    assert sorted(snap.lists) == ["history:t-é", "history:t1", "tmp:U2", "user:U1", "user:old"]
    assert [e["key"] for e in snap.outbox] == ["dead-1", "s:m0:0", "s:m1:0", "s:m2:0"]
    target = adapter()
    target.append_to_list("history:t1", "replaced")
    target.load_snapshot(Snapshot(outbox=[entry("gone")]), merge=True)
    out, _ = restore(tmp_path / "a.json", target.namespace, "--quiet-for", "0")
    assert f"Restored into namespace '{target.namespace}' (replace)" in out
    assert export(target, tmp_path / "b.json") == text  # byte for byte
    assert target.history("t1") == source.history("t1")
    assert [(e.key, e.attempts, e.dead) for e in target.outbox()] == [
        ("dead-1", 4, True), ("s:m0:0", 0, False), ("s:m1:0", 0, False), ("s:m2:0", 0, False)
    ]  # fmt: skip
    sent: list[str] = []
    assert target.dispatch_outbox(lambda e: sent.append(e.key))["sent"] == 3
    assert sent == ["s:m0:0", "s:m1:0", "s:m2:0"]


def existing_and_incoming() -> tuple[Snapshot, Snapshot]:
    existing = Snapshot(
        lists={
            "a": {"items": [1], "expires_at": None},
            "b": {"items": [2], "expires_at": None},
            "same": {"items": ["s"], "expires_at": FUTURE},
        },
        outbox=[entry("r1"), entry("r2")],
    )
    incoming = Snapshot(
        lists={
            "b": {"items": [20, 21], "expires_at": FUTURE},
            "c": {"items": [3], "expires_at": None},
            "same": {"items": ["s"], "expires_at": FUTURE},
        },
        outbox=[entry("r2", payload="theirs"), entry("r3", "t2", attempts=2)],
    )
    return existing, incoming


def test_merge_replaces_lists_by_key_and_appends_new_outbox_entries(
    tmp_path: Path, adapter: Any
) -> None:
    existing, incoming = existing_and_incoming()
    target, oracle = adapter(), adapter()
    target.load_snapshot(existing)
    oracle.load_snapshot(existing)
    oracle.load_snapshot(incoming, merge=True)  # load_snapshot's own merge
    out, _ = restore(write(tmp_path, incoming.to_json()), target.namespace, "--merge")
    assert "(merge)" in out
    merged = target.snapshot()
    assert merged.to_json() == oracle.snapshot().to_json()
    assert merged.lists == {**existing.lists, **incoming.lists}
    assert merged.outbox == [entry("r1"), entry("r2"), entry("r3", "t2", attempts=2)]


def test_dry_run_counts_lists_and_outbox_and_changes_nothing(tmp_path: Path, adapter: Any) -> None:
    existing, incoming = existing_and_incoming()
    target = adapter()
    target.load_snapshot(existing)
    before = target.snapshot().to_json()
    path = write(tmp_path, incoming.to_json())
    for merge, lists, outbox in (
        ([], "added 1, replaced 1, removed 1, unchanged 1",
         "added 1, replaced 1, removed 1, unchanged 0"),
        (["--merge"], "added 1, replaced 1, removed 0, unchanged 1",
         "added 1, replaced 0, removed 0, unchanged 1"),
    ):  # fmt: skip
        out, _ = restore(path, target.namespace, "--dry-run", *merge)
        report = {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines()[2:-1]}
        assert (report["lists"], report["outbox"]) == (lists, outbox)
        assert target.snapshot().to_json() == before
