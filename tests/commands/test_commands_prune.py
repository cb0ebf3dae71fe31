"""``manage.py chatstate_prune``: expired locks go (their pending entries stay), the dedupe
window is trimmed; ``--dry-run`` only counts."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from django.core.management.base import CommandError
from django.test import override_settings

from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.testing.helpers import Pause
from tests.commands.test_commands_snapshot import namespace, run

pytestmark = pytest.mark.django_db


def expired_setup() -> DatabaseStateAdapter:
    store = DatabaseStateAdapter(namespace=namespace())
    store.lock("old", "w1", "queue", ttl=0.5)
    store.lock("old", "w2", "queue", {"m": 2})  # queued behind the soon-expired holder
    store.lock("live", "w3", "queue", ttl=60)
    for i in range(10):
        store.claim_dedupe(("slack", f"m{i}"), 100)
    time.sleep(0.6)
    return store


def test_prune_removes_expired_locks_and_trims_dedupe() -> None:
    store = expired_setup()
    out, _ = run("chatstate_prune", "--namespace", store.namespace, "--dedupe-limit", "4")
    assert out == (
        f"Removed from namespace '{store.namespace}': 1 expired lock(s), "
        "6 dedupe key(s) older than the newest 4.\n"
    )
    snapshot = store.snapshot()
    assert set(snapshot.locks) == {"live"}
    assert [e["owner"] for e in snapshot.pending_locks["old"]] == ["w2"]  # kept
    assert snapshot.dedupe_order == [("slack", f"m{i}") for i in range(6, 10)]
    # The next holder of the expired key receives the entries queued behind the dead one.
    assert store.lock("old", "w4", "queue") == "acquired"
    assert [e.owner for e in store.release_lock("old", "w4")] == ["w2"]


def test_dry_run_counts_and_removes_nothing() -> None:
    store = expired_setup()
    before = store.snapshot()
    out, _ = run(
        "chatstate_prune", "--namespace", store.namespace, "--dedupe-limit", "3", "--dry-run"
    )
    assert out.startswith(
        f"Would remove from namespace '{store.namespace}': 1 expired lock(s), 7 dedupe key(s)"
    )
    assert store.snapshot() == before


def test_default_limit_is_the_setting() -> None:
    store = expired_setup()
    out, _ = run("chatstate_prune", "--namespace", store.namespace)
    assert "0 dedupe key(s) older than the newest 1000" in out
    assert len(store.snapshot().dedupe) == 10


def test_a_bad_limit_is_refused() -> None:
    store = expired_setup()
    before = store.snapshot()
    with pytest.raises(CommandError, match="--dedupe-limit: limit must be an int >= 1"):
        run("chatstate_prune", "--namespace", store.namespace, "--dedupe-limit", "0")
    assert store.snapshot() == before


def test_state_older_than_removes_untouched_states_and_counts_on_a_dry_run() -> None:
    store = DatabaseStateAdapter(namespace=namespace())
    store.put_thread_state("idle", {"n": 1})
    store.subscribe("idle")
    pause = Pause()
    store.put_channel_state("busy", {"n": 1})
    age = f"{pause.age():.3f}s"
    out, _ = run("chatstate_prune", "--namespace", store.namespace, "--state-older-than", age,
                 "--dry-run")  # fmt: skip
    assert "Would remove" in out and "1 state(s) and 1 subscription(s) not touched since" in out
    assert store.thread_state("idle") == {"n": 1}
    age = f"{pause.age():.3f}s"
    out, _ = run("chatstate_prune", "--namespace", store.namespace, "--state-older-than", age)
    assert "1 state(s) and 1 subscription(s)" in out
    snap = store.snapshot()
    assert snap.thread_state == {} and snap.subscriptions == set()
    assert snap.channel_state == {"busy": {"n": 1}}


@pytest.mark.parametrize("age", ["0s", "-3d", "thirty days", "30x", "30", "0.5", "d"])
def test_a_bad_age_is_refused_with_the_accepted_forms(age: str) -> None:
    with pytest.raises(CommandError, match="is not a duration") as refused:
        run("chatstate_prune", f"--state-older-than={age}")
    assert "90s, 45m, 12h, 30d or 2w" in str(refused.value)


def test_a_bare_number_deletes_nothing_and_says_why() -> None:
    """Issue 22: ``--state-older-than 30`` meant 30 seconds and deleted every live state."""
    store = DatabaseStateAdapter(namespace=namespace())
    store.put_thread_state("live", {"n": 1})
    store.subscribe("live")
    time.sleep(0.05)
    with pytest.raises(CommandError, match="a bare number has no unit: write 30d for days"):
        run("chatstate_prune", "--namespace", store.namespace, "--state-older-than", "30")
    assert store.thread_state("live") == {"n": 1} and store.is_subscribed("live")


def test_a_real_run_prints_its_cutoff() -> None:
    store = DatabaseStateAdapter(namespace=namespace())
    before = datetime.now(timezone.utc) - timedelta(days=30)
    out, _ = run("chatstate_prune", "--namespace", store.namespace, "--state-older-than", "30d")
    after = datetime.now(timezone.utc) - timedelta(days=30)
    found = re.search(r"not touched since (\S+ \S+) UTC \(30d before this run\)\.$", out.strip())
    assert found, out
    cutoff = datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    assert before.replace(microsecond=0) <= cutoff <= after


def test_durations_take_units() -> None:
    from chatstate.management.commands.chatstate_prune import age_text, duration

    assert [duration(t) for t in ("90s", "45m", "12h", "30d", "2w", "1.5h", " 7d ")] == [
        90,
        2700,
        43200,
        2592000,
        1209600,
        5400,
        604800,
    ]
    assert [age_text(s) for s in (90, 2700, 43200, 2592000, 1209600, 5400, 0.2)] == [
        "90s",
        "45m",
        "12h",
        "30d",
        "2w",
        "90m",
        "0.2s",
    ]


def test_the_dedupe_count_says_what_dedupe_min_age_kept() -> None:
    """Issue 22: "0 dedupe key(s) older than the newest 100" on 30,222 keys, without a word
    about DEDUPE_MIN_AGE, which kept them."""
    with override_settings(CHATSTATE={"NAMESPACE": "default", "DEDUPE_MIN_AGE": 900}):
        store = DatabaseStateAdapter(namespace=namespace())
        for i in range(5):
            store.claim_dedupe(("slack", f"m{i}"), 100)
        out, _ = run("chatstate_prune", "--namespace", store.namespace, "--dedupe-limit", "2")
    assert (
        "0 dedupe key(s) older than the newest 2 (DEDUPE_MIN_AGE keeps every key younger than 15m)"
    ) in out
    assert len(store.snapshot().dedupe) == 5


def test_expired_lists_are_removed_and_named() -> None:
    store = DatabaseStateAdapter(namespace=namespace())
    store.append_to_list("short", 1, ttl=0.05)
    store.append_to_list("kept", 1)
    time.sleep(0.1)
    out, _ = run("chatstate_prune", "--namespace", store.namespace, "--dry-run")
    assert out.endswith(", 1 expired list(s).\n")
    out, _ = run("chatstate_prune", "--namespace", store.namespace)
    assert out.startswith("Removed") and out.endswith(", 1 expired list(s).\n")
    assert store.get_list("kept") == [1]
    out, _ = run("chatstate_prune", "--namespace", store.namespace)
    assert "list" not in out
