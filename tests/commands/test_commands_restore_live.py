"""``chatstate_restore`` refuses to replace a live namespace (issue 19, item 4): locks held,
claims in progress, or activity within ``--quiet-for`` seconds — unless ``--force`` — and
says what it found; ``--merge`` works live; ``--dry-run`` reports liveness, refusing
nothing. Runs on the run's database adapter; the Redis adapter in the PostgreSQL run."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError
from django.test import override_settings

from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.snapshots.snapshot import Snapshot
from tests.commands.test_commands_restore import restore, write
from tests.commands.test_commands_snapshot import namespace

pytestmark = pytest.mark.django_db(transaction=True)

INCOMING = Snapshot(subscriptions={"restored"}, thread_state={"t9": {"n": 9}})


def refusal(ns: str, locks: int, claims: int) -> str:
    """The refusal's message, as a pattern (the age is whatever the clock says)."""
    held = f"{locks} lock{'s' * (locks != 1)} held, {claims} claim{'s' * (claims != 1)}"
    return (
        rf"^namespace '{re.escape(ns)}' is live: {held} in progress, last activity \d+ s ago; "
        r"stop the workers or pass --force; nothing was changed$"
    )


def refused(path: Path, store: Any, *args: str) -> str:
    """The command's error for a replace of ``store``'s namespace; the namespace unchanged."""
    before = store.snapshot()
    with pytest.raises(CommandError) as info:
        restore(path, store.namespace, *args)
    assert store.snapshot() == before
    return str(info.value)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return write(tmp_path, INCOMING.to_json())


def test_a_held_lock_refuses_a_replace(path: Path) -> None:
    store = DatabaseStateAdapter(namespace=namespace())
    store.lock("t1", "w1", ttl=60)
    assert re.match(refusal(store.namespace, 1, 0), refused(path, store))
    assert re.match(refusal(store.namespace, 1, 0), refused(path, store, "--quiet-for", "0"))


def test_a_message_being_handled_refuses_a_replace(path: Path) -> None:
    store = DatabaseStateAdapter(namespace=namespace())
    with store.handle_message(("slack", "m1"), thread_id="t1", owner="w1") as msg:
        assert msg.acquired
        message = refused(path, store, "--quiet-for", "0")
    assert re.match(refusal(store.namespace, 1, 1), message)


def test_recent_activity_refuses_until_the_namespace_was_quiet_long_enough(path: Path) -> None:
    store = DatabaseStateAdapter(namespace=namespace())
    store.put_thread_state("t1", {"n": 1})
    assert re.match(refusal(store.namespace, 0, 0), refused(path, store))
    assert re.match(refusal(store.namespace, 0, 0), refused(path, store, "--quiet-for", "2m"))
    time.sleep(1.2)
    out, _ = restore(path, store.namespace, "--quiet-for", "1")
    assert f"Restored into namespace '{store.namespace}' (replace)" in out
    assert store.snapshot() == INCOMING


def test_force_replaces_a_live_namespace_and_says_so(path: Path) -> None:
    store = DatabaseStateAdapter(namespace=namespace())
    store.lock("t1", "w1", ttl=60)
    out, err = restore(path, store.namespace, "--force", stderr=io.StringIO())
    assert store.snapshot() == INCOMING
    assert re.match(
        rf"^warning: namespace '{store.namespace}' is live: 1 lock held, 0 claims in progress, "
        r"last activity \d+ s ago; replaced anyway \(--force\)$",
        err.strip(),
    )


def test_a_merge_and_a_quiet_namespace_are_not_refused(path: Path) -> None:
    store = DatabaseStateAdapter(namespace=namespace())
    store.lock("t1", "w1", ttl=60)
    restore(path, store.namespace, "--merge")
    assert store.snapshot().subscriptions == {"restored"}
    assert set(store.snapshot().locks) == {"t1"}
    empty = DatabaseStateAdapter(namespace=namespace())
    restore(path, empty.namespace)  # nothing ever happened in it
    assert empty.snapshot() == INCOMING


def test_a_dry_run_reports_liveness_and_refuses_nothing(path: Path) -> None:
    store = DatabaseStateAdapter(namespace=namespace())
    store.lock("t1", "w1", ttl=60)
    before = store.snapshot()
    out, _ = restore(path, store.namespace, "--dry-run")
    first = out.splitlines()[0]
    assert re.match(
        rf"^namespace '{store.namespace}' is live: 1 lock held, 0 claims in progress, last "
        r"activity \d+ s ago: a replace restore would be refused "
        r"\(stop the workers or --force\)\.$",
        first,
    )
    assert out.splitlines()[-1] == "Nothing was changed."
    quiet = DatabaseStateAdapter(namespace=namespace())
    out, _ = restore(path, quiet.namespace, "--dry-run")
    assert out.splitlines()[0] == (
        f"namespace '{quiet.namespace}' is quiet: 0 locks held, 0 claims in progress, "
        "no activity recorded."
    )
    assert store.snapshot() == before


@pytest.mark.parametrize("value", ["-1", "soon", "", "1d"])
def test_quiet_for_must_be_seconds(path: Path, value: str) -> None:
    with pytest.raises(CommandError, match="--quiet-for"):
        restore(path, namespace(), "--quiet-for", value)


@pytest.fixture
def redis_adapter() -> Iterator[Any]:
    """The command on the Redis adapter (the tests' ``chatstate`` alias)."""
    from chatstate.adapters.redis import RedisStateAdapter

    options = {"alias": "chatstate"}
    adapter = RedisStateAdapter(namespace=namespace(), **options)
    settings = {"ADAPTER": "chatstate.adapters.redis.RedisStateAdapter", "OPTIONS": options}
    with override_settings(CHATSTATE=settings):
        yield adapter
    adapter.clear()


@pytest.mark.run_on("postgresql")
def test_a_live_redis_namespace_is_refused_too(path: Path, redis_adapter: Any) -> None:
    store = redis_adapter
    with store.handle_message(("slack", "m1"), thread_id="t1", owner="w1") as msg:
        assert msg.acquired
        message = refused(path, store, "--quiet-for", "0")
    assert re.match(refusal(store.namespace, 1, 1), message)
    restore(path, store.namespace, "--force", stderr=io.StringIO())
    assert store.snapshot() == INCOMING


def test_a_live_namespace_is_refused_before_the_file_is_read(tmp_path: Path) -> None:
    """The check costs nothing of the file: even a broken one is not read."""
    store = DatabaseStateAdapter(namespace=namespace())
    store.lock("t1", "w1", ttl=60)
    broken = write(tmp_path, "{not json", name="broken.json")
    assert re.match(refusal(store.namespace, 1, 0), refused(broken, store))
    with pytest.raises(CommandError, match="not a valid snapshot"):
        restore(broken, store.namespace, "--force", stderr=io.StringIO())
