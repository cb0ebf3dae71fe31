"""Functions version 5's lighter cycle (issue 24): what the server no longer does per message."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from chatstate.adapters import database
from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.models import ClaimMinute, DedupeWindow

pytestmark = [pytest.mark.run_on("postgresql"), pytest.mark.usefixtures("db")]

#: A PostgreSQL function named in the SQL the adapter sends.
CALLED = re.compile(r"\b(chatstate_[a-z_]+)\(")


def claim(store: DatabaseStateAdapter, mid: str) -> None:
    with store.handle_message(("s", mid), thread_id="t", owner="w") as msg:
        assert msg.acquired


def test_a_minute_noted_on_the_window_row_is_not_written_again() -> None:
    store = DatabaseStateAdapter(namespace="sw-minute")
    claim(store, "m1")
    (row,) = ClaimMinute.objects.filter(namespace="sw-minute")
    assert DedupeWindow.objects.get(namespace="sw-minute").minute == row.minute
    row.delete()
    later = timezone.now() + timedelta(days=1)
    DedupeWindow.objects.filter(namespace="sw-minute").update(minute=later)
    claim(store, "m2")  # its minute is noted as written: the claim writes no row
    assert not ClaimMinute.objects.filter(namespace="sw-minute").exists()
    DedupeWindow.objects.filter(namespace="sw-minute").update(minute=None)
    claim(store, "m3")  # nothing noted: the claim writes its minute's row
    (row,) = ClaimMinute.objects.filter(namespace="sw-minute")
    assert row.first_seq == 3
    assert DedupeWindow.objects.get(namespace="sw-minute").minute == row.minute


def test_the_functions_a_cycle_calls_keep_their_plans() -> None:
    names = ["chatstate_claim_live", "chatstate_claim_holds", "chatstate_take_entries"]
    names += ["chatstate_expire_entries", "chatstate_list_items", "chatstate_scalars"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname, l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
            " WHERE p.proname = ANY(%s)",
            [names],
        )
        languages = dict(cursor.fetchall())
    assert languages == dict.fromkeys(names, "plpgsql")


def test_the_lock_table_has_no_secondary_index() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'chatstate_lock'")
        indexes = {row[0] for row in cursor.fetchall()}
    assert indexes == {"chatstate_lock_pkey", "chatstate_lock_unique"}


def test_the_functions_python_calls_plan_without_sequential_scans_and_keep_their_plans() -> None:
    """A plan kept since a table looked empty must not scan it whole (version 7); a plan is
    kept, not made again on every call (version 9)."""
    sources = Path(database.__file__).parent.glob("*.py")
    called = {name for path in sources for name in CALLED.findall(path.read_text("utf-8"))}
    assert {"chatstate_enter", "chatstate_commit", "chatstate_lock"} <= called
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname, coalesce(p.proconfig, '{}') FROM pg_proc p"
            " JOIN pg_language l ON l.oid = p.prolang"
            " WHERE l.lanname = 'plpgsql' AND p.proname = ANY(%s)",
            [sorted(called)],
        )
        settings = dict(cursor.fetchall())
    assert len(settings) >= 15
    scanning = {name for name, config in settings.items() if "enable_seqscan=off" not in config}
    assert scanning == set()
    replanning = {
        name
        for name, config in settings.items()
        if "plan_cache_mode=force_generic_plan" not in config
    }
    assert replanning == set()
