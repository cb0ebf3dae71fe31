"""The admin's pages for capped lists and the outbox: their columns, searches and filters,
and the outbox's ``requeue`` and ``discard`` actions, which go through the adapter and obey
Django's permissions. Runs in the SQLite and the PostgreSQL run."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chatstate.admin import lists as list_admin
from chatstate.calls import OutboxClaim
from chatstate.models import ListHead, OutboxMessage
from tests.admin.helpers import THREAD, cells, changelist, populate_state, rows_shown, staff_client

HISTORY = f"history:{THREAD}"


@pytest.fixture
def state(db: None) -> dict[str, Any]:
    return populate_state()


@pytest.fixture
def viewer(django_user_model: Any) -> Client:
    return staff_client(django_user_model, "viewer", ["view_listhead", "view_outboxmessage"])


def column(response: Any, field: str) -> dict[str, str]:
    """The cells of ``field`` by the row's first column."""
    return dict(zip(rows_shown(response), cells(response, field), strict=True))


def post_action(client: Client, action: str, rows: list[Any], **extra: str) -> Any:
    data = {"action": action, "index": "0", "_selected_action": [str(r.pk) for r in rows]}
    return client.post(changelist("outboxmessage"), {**data, **extra}, follow=True)


def entry(key: str) -> OutboxMessage:
    return OutboxMessage.objects.get(key=key)


# -- lists -------------------------------------------------------------------------------


def test_list_columns_show_length_newest_item_and_expiry(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("listhead"), {"namespace": "ns-a"})
    assert rows_shown(response) == ["user:U1", HISTORY]  # newest first
    assert column(response, "length") == {"user:U1": "1", HISTORY: "3"}
    newest = column(response, "newest_item")
    assert newest == {"user:U1": '"hello"', HISTORY: 'role: "user" · text: "<i>turn 2</i>"'}
    assert "&lt;i&gt;turn 2" in response.content.decode()  # escaped, never HTML
    expiry = column(response, "expiry")
    assert expiry[HISTORY] == "never" and re.fullmatch(r"in \d+m \d+s", expiry["user:U1"])


def test_a_capped_list_counts_and_shows_what_it_keeps(admin_client: Client, state: Any) -> None:
    for n in range(12):  # PostgreSQL keeps the 7 trimmed rows until its next batch
        state["a"].append_to_list("capped", f"item {n}", max_length=5)
    response = admin_client.get(changelist("listhead"), {"q": "capped"})
    assert column(response, "length") == {"capped": "5"}
    assert column(response, "newest_item") == {"capped": '"item 11"'}
    head = ListHead.objects.get(namespace="ns-a", key="capped")
    page = admin_client.get(reverse("admin:chatstate_listhead_change", args=[head.pk]))
    shown = page.content.decode()
    assert "item 7" in shown and "item 11" in shown and "item 6" not in shown
    assert "not shown" not in shown


def test_an_expired_list_is_flagged(admin_client: Client, state: Any) -> None:
    state["a"].append_to_list("short", 1, ttl=0.05)
    time.sleep(0.1)
    response = admin_client.get(changelist("listhead"), {"q": "short"})
    assert re.fullmatch(r"expired \d+s ago", column(response, "expiry")["short"])
    assert '<span class="chatstate-orphan"' in response.content.decode()


def test_a_history_links_to_its_thread_state(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("listhead"), {"namespace": "ns-a"})
    assert column(response, "related") == {"user:U1": "-", HISTORY: "state"}
    page = response.content.decode()
    href = next(
        html.unescape(h) for h in re.findall(r'href="([^"]+)"', page) if "/threadstate/?" in h
    )
    assert rows_shown(admin_client.get(href)) == [THREAD]
    other = admin_client.get(changelist("listhead"), {"namespace": "ns-b"})
    assert column(other, "related") == {"history:discord:G1:1": "state"}


@pytest.mark.parametrize(
    ("term", "found"),
    [
        (HISTORY, [HISTORY]),
        (THREAD, [HISTORY]),  # a thread id finds its history
        ("slack:C1:*", [HISTORY]),  # a prefix of thread ids
        ("slack:C1", [HISTORY]),  # platform:channel
        ("user:U1", ["user:U1"]),
        ("U1", ["user:U1"]),  # a part after the first
        ("user:*", ["user:U1"]),
        ("USER:U1", []),
        ("slack:C2:1", []),
    ],
)
def test_list_search(admin_client: Client, state: Any, term: str, found: list[str]) -> None:
    response = admin_client.get(changelist("listhead"), {"q": term, "namespace": "ns-a"})
    assert rows_shown(response) == found
    assert "finds their histories" in response.content.decode()


@pytest.mark.run_on("sqlite")
def test_on_sqlite_a_list_search_reads_through_indexes(admin_client: Client, state: Any) -> None:
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(changelist("listhead"), {"q": "slack:C1"})
    selects = [q["sql"] for q in queries if 'FROM "chatstate_listhead"' in q["sql"]]
    assert selects
    with connection.cursor() as cursor:
        for sql in selects:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            plan = [row[-1] for row in cursor.fetchall()]
            assert not any(step.startswith("SCAN chatstate_listhead") for step in plan), plan


def test_a_list_page_shows_its_newest_items(
    admin_client: Client, state: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = ListHead.objects.get(namespace="ns-a", key=HISTORY)
    url = reverse("admin:chatstate_listhead_change", args=[head.pk])
    page = admin_client.get(url).content.decode()
    assert page.count("turn ") == 3 and "not shown" not in page
    assert 'name="_save"' not in page
    monkeypatch.setattr(list_admin, "ITEMS_SHOWN", 2)
    page = admin_client.get(url).content.decode()
    assert "turn 0" not in page and "turn 2" in page and "1 older item not shown" in page


# -- the outbox --------------------------------------------------------------------------


def test_outbox_columns(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("outboxmessage"), {"namespace": "ns-a"})
    assert rows_shown(response) == [THREAD, THREAD, "slack:C2:1"]  # oldest first
    assert cells(response, "key_column") == ["slack:m1:0", "slack:m2:0", "slack:m20:0"]
    assert cells(response, "attempts") == ["0", "2", "10"]
    due = cells(response, "due")
    assert due[0] == "now" and re.fullmatch(r"in \d+s", due[1]) and due[2] == "-"
    assert cells(response, "status") == ["waiting", "waiting", "dead"]
    previews = cells(response, "payload_preview")
    assert previews == ['text: "<b>hi</b>"', 'text: "again"', '"plain"']
    assert "<b>hi</b>" not in response.content.decode()


def test_a_leased_entry_shows_as_sending(admin_client: Client, state: Any) -> None:
    (taken,) = state["b"]._do_outbox_claim(OutboxClaim("dispatcher-1", 10, 60))
    response = admin_client.get(changelist("outboxmessage"), {"namespace": "ns-b"})
    assert cells(response, "status") == ["sending"]
    assert 'title="leased by dispatcher-1"' in response.content.decode()


def test_outbox_status_filter(admin_client: Client, state: Any) -> None:
    dead = admin_client.get(changelist("outboxmessage"), {"status": "dead"})
    assert rows_shown(dead) == ["slack:C2:1"]
    waiting = admin_client.get(changelist("outboxmessage"), {"status": "waiting"})
    assert sorted(rows_shown(waiting)) == sorted([f"{THREAD}\nns-a"] * 2 + ["discord:G1:1\nns-b"])


@pytest.mark.parametrize(
    ("term", "keys"),
    [
        (THREAD, ["slack:m1:0", "slack:m2:0"]),
        ("slack:m20:0", ["slack:m20:0"]),
        ("C2", ["slack:m20:0"]),  # a channel finds its threads' entries
        ("discord:m9:*", ["discord:m9:0"]),
        ("m1", ["slack:m1:0"]),  # a message id finds its replies
        ("m3", []),
    ],
)
def test_outbox_search_by_thread_or_key(
    admin_client: Client, state: Any, term: str, keys: list[str]
) -> None:
    response = admin_client.get(changelist("outboxmessage"), {"q": term})
    assert cells(response, "key_column") == keys


def test_requeue_makes_dead_entries_due_through_the_adapter(
    admin_client: Client, state: Any
) -> None:
    rows = [entry("slack:m20:0"), entry("slack:m1:0")]
    page = html.unescape(post_action(admin_client, "requeue", rows).content.decode())
    assert "Requeued 1 entry; 1 entry not dead left as it was." in page
    requeued = next(e for e in state["a"].outbox() if e.key == "slack:m20:0")
    assert (requeued.dead, requeued.attempts) == (False, 0)
    sent: list[str] = []
    state["a"].dispatch_outbox(lambda e: sent.append(e.key))
    assert sent == ["slack:m1:0", "slack:m20:0"]  # slack:m2:0 waits for its retry


def test_discard_after_confirmation(admin_client: Client, state: Any) -> None:
    rows = [entry("slack:m1:0"), entry("slack:m20:0")]
    confirm = admin_client.post(
        changelist("outboxmessage"),
        {"action": "discard", "index": "0", "_selected_action": [r.pk for r in rows]},
    )
    assert confirm.status_code == 200
    text = confirm.content.decode()
    assert "Discard 2 outbox entries?" in text and "10 failed attempts" in text
    assert OutboxMessage.objects.filter(namespace="ns-a").count() == 3
    page = post_action(admin_client, "discard", rows, post="yes").content.decode()
    assert "Discarded 2 entries: never sent." in page
    assert [e.key for e in state["a"].outbox()] == ["slack:m2:0"]
    assert [e.key for e in state["b"].outbox()] == ["discord:m9:0"]


def test_view_only_user_changes_nothing(viewer: Client, state: Any) -> None:
    page = viewer.get(changelist("outboxmessage")).content.decode()
    assert 'value="requeue"' not in page and 'value="discard"' not in page
    rows = [entry("slack:m20:0"), entry("slack:m1:0")]
    post_action(viewer, "requeue", rows)
    post_action(viewer, "discard", rows, post="yes")
    assert entry("slack:m20:0").dead
    assert OutboxMessage.objects.count() == 4
    head = ListHead.objects.get(key=HISTORY)
    change = viewer.post(reverse("admin:chatstate_listhead_change", args=[head.pk]), {})
    assert change.status_code == 403


def test_the_change_permission_requeues_and_the_delete_permission_discards(
    django_user_model: Any, state: Any
) -> None:
    operator = staff_client(django_user_model, "operator", ["change_outboxmessage"])
    page = operator.get(changelist("outboxmessage")).content.decode()
    assert 'value="requeue"' in page and 'value="discard"' not in page
    post_action(operator, "discard", [entry("slack:m20:0")], post="yes")
    assert entry("slack:m20:0").dead  # not discarded
    post_action(operator, "requeue", [entry("slack:m20:0")])
    assert not entry("slack:m20:0").dead
    cleaner = staff_client(
        django_user_model, "cleaner", ["view_outboxmessage", "delete_outboxmessage"]
    )
    post_action(cleaner, "discard", [entry("slack:m20:0")], post="yes")
    assert not OutboxMessage.objects.filter(key="slack:m20:0").exists()
