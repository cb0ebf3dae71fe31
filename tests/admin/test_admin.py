"""The admin's pages: every page renders read-only with the columns and links that matter,
no page counts a whole table, actions obey permissions. (Search: ``test_admin_search``;
the overview: ``test_admin_overview``.) Runs in the SQLite and the PostgreSQL run.
"""

from __future__ import annotations

import html
import json
import re
import warnings
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chatstate.admin.indexed import EstimatedCountPaginator
from chatstate.models import (
    DedupeEntry,
    DedupeWindow,
    Lock,
    PendingLockEntry,
    Subscription,
    ThreadState,
)
from tests.admin.helpers import (
    MODELS,
    THREAD,
    cells,
    changelist,
    populate_state,
    rows_shown,
    staff_client,
)


@pytest.fixture
def state(db: None) -> dict[str, Any]:
    return populate_state()


@pytest.fixture
def viewer(django_user_model: Any) -> Client:
    """Staff with every chatstate view permission and nothing else."""
    return staff_client(django_user_model, "viewer", [f"view_{name}" for name in MODELS])


@pytest.fixture
def outsider(django_user_model: Any) -> Client:
    """Staff without any chatstate permission."""
    return staff_client(django_user_model, "outsider", [])


# -- changelists -------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", list(MODELS))
def test_every_changelist_renders_its_rows(
    admin_client: Client, state: dict[str, Any], model_name: str
) -> None:
    response = admin_client.get(changelist(model_name))
    assert response.status_code == 200
    shown = rows_shown(response)
    assert len(shown) == MODELS[model_name].objects.count() > 0


def test_dedupe_window_bookkeeping_is_not_listed(admin_client: Client, state: Any) -> None:
    assert DedupeWindow.objects.exists()
    index = admin_client.get(reverse("admin:app_list", args=["chatstate"])).content.decode()
    assert "dedupewindow" not in index
    assert "Dedupe entries" in index


def test_lock_columns_answer_who_since_when_and_queue_depth(
    admin_client: Client, state: Any
) -> None:
    response = admin_client.get(changelist("lock"), {"namespace": "ns-a", "key": THREAD})
    assert rows_shown(response) == [THREAD]
    assert cells(response, "owner_column") == ["worker-7"]
    assert cells(response, "strategy") == ["queue"]
    assert cells(response, "queue_depth") == ["2"]
    assert re.fullmatch(r"\d+s", cells(response, "held_for")[0])
    assert re.fullmatch(r"in \d+m \d+s", cells(response, "expires")[0])
    page = response.content.decode()
    assert re.search(r'<time datetime="[^"]+" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">', page)
    # No namespace column: ids carry theirs where a page shows several namespaces.
    assert "field-namespace" not in page and "chatstate-namespace" not in page
    both = admin_client.get(changelist("lock"))
    assert "field-namespace" not in both.content.decode()
    assert f"{THREAD}\nns-a" in rows_shown(both) and "discord:G1:1\nns-b" in rows_shown(both)
    assert all("\n" not in owner for owner in cells(both, "owner_column"))


def test_a_key_held_by_slots_shows_how_many_hold_it_and_who(
    admin_client: Client, state: Any
) -> None:
    """A capped ``concurrent`` key: "2 holders" in the list, each holder on the detail page
    and in the overview, the force-release message naming them."""
    from chatstate.adapters.database import DatabaseStateAdapter

    slots = DatabaseStateAdapter(namespace="ns-slots")
    for owner in ("w1", "w2"):
        slots.lock("slack:S:1", owner, "concurrent", {"mid": owner}, max_concurrent=2)
    slots.lock("slack:S:1", "w3", "concurrent", max_concurrent=2)  # queued
    response = admin_client.get(changelist("lock"), {"namespace": "ns-slots"})
    assert cells(response, "owner_column") == ["2 holders"]
    assert cells(response, "strategy") == ["concurrent"]
    assert cells(response, "queue_depth") == ["1"]
    row = Lock.objects.get(namespace="ns-slots")
    page = admin_client.get(reverse("admin:chatstate_lock_change", args=[row.pk])).content
    holders = re.findall(r"<tr><td>(w\d)</td><td>.*?</td><td>(in \d+m \d+s)</td><td>(.*?)</td>",
                         html.unescape(page.decode()))  # fmt: skip
    assert [(owner, json.loads(meta)) for owner, _, meta in holders] == [
        ("w1", {"mid": "w1"}),
        ("w2", {"mid": "w2"}),
    ]
    overview = admin_client.get(reverse("admin:chatstate_lock_overview"), {"namespace": "ns-slots"})
    assert "held by 2 holders for" in overview.content.decode()
    released = post_action(admin_client, "lock", "force_release", [row]).content.decode()
    assert "(namespace 'ns-slots', slots of 'w1', 'w2'); dropped 1 pending entry" in (
        html.unescape(released)
    )
    assert slots.lock("slack:S:1", "w4") == "acquired"


def test_change_pages_are_read_only_with_pretty_json(admin_client: Client, state: Any) -> None:
    row = ThreadState.objects.get(namespace="ns-a", thread_id=THREAD)
    url = reverse("admin:chatstate_threadstate_change", args=[row.pk])
    page = admin_client.get(url).content.decode()
    pretty = json.dumps(row.value, indent=2, sort_keys=True)
    assert f'<pre class="chatstate-json">{html.escape(pretty)}</pre>' in page
    assert "<b>billing</b>" not in page  # escaped, never rendered as HTML
    assert 'name="_save"' not in page
    response = admin_client.post(url, {"value": "{}"})
    assert response.status_code == 403
    row.refresh_from_db()
    assert row.value["turns"] == 3
    assert admin_client.get(reverse("admin:chatstate_threadstate_add")).status_code == 403


@pytest.mark.parametrize("model_name", list(MODELS))
def test_every_change_page_renders(admin_client: Client, state: Any, model_name: str) -> None:
    row = MODELS[model_name].objects.order_by("pk").first()
    response = admin_client.get(reverse(f"admin:chatstate_{model_name}_change", args=[row.pk]))
    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()


# -- search and filters ------------------------------------------------------------------


# -- previews, related rows, wording ----------------------------------------------------


def test_the_state_preview_names_every_top_level_key(admin_client: Client, state: Any) -> None:
    a = state["a"]
    a.put_thread_state(
        "slack:C3:1",
        {
            "turns": 12,
            "topic": "a question about invoice 2024-11 and the refund that followed it",
            "history": [{"role": "user"}] * 40,
            "profile": {"locale": "en-GB", "tier": "gold"},
            "escalated": False,
        },
    )
    response = admin_client.get(changelist("threadstate"), {"q": "slack:C3:1"})
    (preview,) = cells(response, "preview")
    for key in ("turns: 12", "history: [40 items]", "profile: {2 keys}", "escalated: false"):
        assert key in preview
    assert 'topic: "a question' in preview and "…" in preview  # a long value is cut
    a.put_thread_state("slack:C3:2", {f"key{i:02d}": "v" * 30 for i in range(40)})
    (many,) = cells(admin_client.get(changelist("threadstate"), {"q": "slack:C3:2"}), "preview")
    assert many.startswith("key00 · key01 · ") and re.search(r"\+\d+ more keys$", many)


def test_related_links_only_where_the_row_exists(admin_client: Client, state: Any) -> None:
    a = state["a"]
    a.put_thread_state("slack:C3:alone", {"turns": 1})  # no lock, no subscription
    a.put_thread_state("slack:C2:1", {"turns": 1})  # locked and subscribed
    response = admin_client.get(changelist("threadstate"), {"namespace": "ns-a"})
    related = dict(zip(rows_shown(response), cells(response, "related"), strict=True))
    assert related["slack:C3:alone"] == "-"
    assert related["slack:C2:1"] == "lock\nsubscription"  # two links, one per line
    subscriptions = admin_client.get(changelist("subscription"), {"namespace": "ns-a"})
    related = dict(zip(rows_shown(subscriptions), cells(subscriptions, "related"), strict=True))
    assert related == {
        THREAD: "lock\nstate",
        "slack:C1:1700000000.10": "-",
        "slack:C2:1": "lock\nstate",
    }
    locks = admin_client.get(changelist("lock"), {"namespace": "ns-a"})
    related = dict(zip(rows_shown(locks), cells(locks, "related"), strict=True))
    assert related == {
        THREAD: "pending\nstate\nsubscription",
        "slack:C2:1": "state\nsubscription",
    }


@pytest.mark.parametrize("model_name", list(MODELS))
def test_a_page_reads_related_rows_once_not_per_row(
    admin_client: Client, state: Any, model_name: str
) -> None:
    """The queries of a changelist page do not grow with the rows it shows."""

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            admin_client.get(changelist(model_name), {"namespace": "ns-a"})
        return len(captured)

    before = queries()
    a = state["a"]
    for i in range(8):
        thread = f"slack:C4:{i}"
        a.subscribe(thread)
        a.put_thread_state(thread, {"turns": i})
        a.put_channel_state(f"slack:C4{i}", {"topic": i})
        a.claim_dedupe(("slack", f"c4-{i}"), 100)
        a.lock(thread, "worker-1", "queue")
        a.lock(thread, "worker-2", "queue")
    assert queries() == before


def test_pages_say_view_not_change(admin_client: Client, state: Any) -> None:
    page = admin_client.get(changelist("threadstate")).content.decode()
    assert "Select thread state to view" in page and "to change" not in page
    index = admin_client.get(reverse("admin:app_list", args=["chatstate"])).content.decode()
    assert "View" in index and ">Change<" not in index
    row = ThreadState.objects.get(namespace="ns-a", thread_id=THREAD)
    change = admin_client.get(reverse("admin:chatstate_threadstate_change", args=[row.pk]))
    assert "<h1>View thread state</h1>" in change.content.decode()


def test_dedupe_entries_are_deleted_only_through_the_window_keeping_action(
    admin_client: Client, viewer: Client, state: Any
) -> None:
    """Django's ``delete_selected`` and a change page's "Delete" would leave the window
    count wrong: neither is offered; ``delete_entries`` is, to those who may delete."""
    page = admin_client.get(changelist("dedupeentry")).content.decode()
    assert 'value="delete_entries"' in page and "delete_selected" not in page
    assert "delete_entries" not in viewer.get(changelist("dedupeentry")).content.decode()
    row = DedupeEntry.objects.filter(namespace="ns-a").first()
    change = admin_client.get(reverse("admin:chatstate_dedupeentry_change", args=[row.pk]))
    assert "deletelink" not in change.content.decode()
    delete = reverse("admin:chatstate_dedupeentry_delete", args=[row.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403


@pytest.mark.parametrize("model_name", list(MODELS))
def test_pages_use_no_deprecated_admin_api(
    admin_client: Client, state: Any, model_name: str
) -> None:
    """(Django 6.1 warns about ``get_actions()`` overrides without ``action_location``.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", PendingDeprecationWarning)
        assert admin_client.get(changelist(model_name)).status_code == 200
        row = MODELS[model_name].objects.first()
        url = reverse(f"admin:chatstate_{model_name}_change", args=[row.pk])
        assert admin_client.get(url).status_code == 200


# -- scale: bounded counts, capped pages, indexed searches ------------------------------


def test_no_page_counts_a_whole_table(admin_client: Client, state: Any) -> None:
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(changelist("dedupeentry")).status_code == 200
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts, "the page shows a row count"
    assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_pages_count_only_up_to_a_bound_and_stop_at_max_pages(
    admin_client: Client, state: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EstimatedCountPaginator, "exact_limit", 3)
    monkeypatch.setattr(EstimatedCountPaginator, "max_pages", 2)
    monkeypatch.setattr("chatstate.admin.base.ChatStateAdmin.list_per_page", 1)
    page = admin_client.get(changelist("dedupeentry")).content.decode()
    assert re.search(r"(about \d+|more than 3) dedupe entries", page)
    assert "pages stop at 2" in page
    assert admin_client.get(changelist("dedupeentry"), {"p": "2"}).status_code == 200
    deep = admin_client.get(changelist("dedupeentry"), {"p": "3"})
    assert deep.status_code == 302 and deep["Location"].endswith("?e=1")


# -- actions and permissions -------------------------------------------------------------


def post_action(client: Client, model_name: str, action: str, rows: list[Any], **extra: str) -> Any:
    data = {"action": action, "index": "0", "_selected_action": [str(r.pk) for r in rows]}
    return client.post(changelist(model_name), {**data, **extra}, follow=True)


def test_force_release_drops_the_lock_and_names_what_was_pending(
    admin_client: Client, state: Any
) -> None:
    lock = Lock.objects.get(namespace="ns-a", key=THREAD)
    response = post_action(admin_client, "lock", "force_release", [lock])
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert f"Released lock '{THREAD}' (namespace 'ns-a', held by 'worker-7')" in page
    assert "dropped 2 pending entries: m2, worker-9" in page
    assert not Lock.objects.filter(namespace="ns-a", key=THREAD).exists()
    assert not PendingLockEntry.objects.filter(namespace="ns-a", key=THREAD).exists()
    assert Lock.objects.filter(key="slack:C2:1").exists()  # not selected: untouched
    assert state["a"].lock(THREAD, "worker-10") == "acquired"


def test_force_release_says_when_nothing_was_pending(admin_client: Client, state: Any) -> None:
    lock = Lock.objects.get(key="slack:C2:1")
    page = html.unescape(
        post_action(admin_client, "lock", "force_release", [lock]).content.decode()
    )
    assert "Released lock 'slack:C2:1' (namespace 'ns-a', held by 'worker-3'); nothing" in page


def test_view_only_user_cannot_force_release(viewer: Client, state: Any) -> None:
    lock = Lock.objects.get(namespace="ns-a", key=THREAD)
    page = viewer.get(changelist("lock")).content.decode()
    assert "force_release" not in page
    response = post_action(viewer, "lock", "force_release", [lock])
    assert response.status_code in (200, 403)
    assert Lock.objects.filter(pk=lock.pk).exists()
    assert PendingLockEntry.objects.filter(namespace="ns-a", key=THREAD).count() == 2


def test_unsubscribe_action(admin_client: Client, state: Any) -> None:
    rows = list(Subscription.objects.filter(namespace="ns-a", thread_id=THREAD))
    page = post_action(admin_client, "subscription", "unsubscribe", rows).content.decode()
    assert f"Unsubscribed 1 thread(s): {THREAD}" in html.unescape(page)
    assert not state["a"].is_subscribed(THREAD)
    assert state["b"].is_subscribed("discord:G1:1")


def test_view_only_user_cannot_unsubscribe(viewer: Client, state: Any) -> None:
    rows = list(Subscription.objects.filter(namespace="ns-a", thread_id=THREAD))
    post_action(viewer, "subscription", "unsubscribe", rows)
    assert state["a"].is_subscribed(THREAD)


def test_delete_dedupe_entries_after_confirmation(admin_client: Client, state: Any) -> None:
    a = state["a"]
    rows = list(DedupeEntry.objects.filter(namespace="ns-a", adapter="slack"))
    confirm = admin_client.post(
        changelist("dedupeentry"),
        {"action": "delete_entries", "index": "0", "_selected_action": [r.pk for r in rows]},
    )
    assert confirm.status_code == 200
    assert "Delete 3 dedupe" in confirm.content.decode()
    assert DedupeEntry.objects.filter(namespace="ns-a").count() == 4
    page = post_action(admin_client, "dedupeentry", "delete_entries", rows, post="yes")
    assert "Deleted 3 dedupe entries" in page.content.decode()
    assert not a.is_duplicate(("slack", "m1"))
    assert a.is_duplicate(("discord", "m2"))
    # The window still works after the deletion: a redelivery is handled once more.
    assert a.claim_dedupe(("slack", "m1"), 2) is True
    assert a.claim_dedupe(("slack", "m1"), 2) is False


def test_a_key_deleted_from_the_middle_of_the_window_costs_it_no_later_key(
    admin_client: Client, db: None
) -> None:
    """The window still drops its oldest key first once a key in its middle is deleted."""
    from chatstate.adapters.database import DatabaseStateAdapter

    store = DatabaseStateAdapter(namespace="ns-gap")
    for mid in ("m1", "m2", "m3", "m4", "m5"):
        store.mark_dedupe(("s", mid), 5)
    rows = list(DedupeEntry.objects.filter(namespace="ns-gap", message_id="m3"))
    post_action(admin_client, "dedupeentry", "delete_entries", rows, post="yes")
    for mid in ("m6", "m7"):
        assert store.claim_dedupe(("s", mid), 5) is True
    # The newest five: m2, m4 to m7. Only m1 left.
    assert store.snapshot().dedupe_order == [("s", m) for m in ("m2", "m4", "m5", "m6", "m7")]


def test_delete_across_a_filtered_namespace_clears_its_window(
    admin_client: Client, state: Any
) -> None:
    response = admin_client.post(
        changelist("dedupeentry") + "?namespace=ns-a",
        {
            "action": "delete_entries",
            "index": "0",
            "select_across": "1",
            "post": "yes",
            "_selected_action": [str(DedupeEntry.objects.filter(namespace="ns-a").first().pk)],
        },
    )
    assert response.status_code == 302
    assert not DedupeEntry.objects.filter(namespace="ns-a").exists()
    assert DedupeEntry.objects.filter(namespace="ns-b").count() == 1


def test_view_only_user_cannot_delete_dedupe_entries(viewer: Client, state: Any) -> None:
    rows = list(DedupeEntry.objects.filter(namespace="ns-a"))
    post_action(viewer, "dedupeentry", "delete_entries", rows, post="yes")
    assert DedupeEntry.objects.filter(namespace="ns-a").count() == 4


def test_the_change_permission_alone_allows_the_actions(django_user_model: Any, state: Any) -> None:
    operator = staff_client(django_user_model, "operator", ["change_lock"])
    lock = Lock.objects.get(namespace="ns-a", key=THREAD)
    post_action(operator, "lock", "force_release", [lock])
    assert not Lock.objects.filter(pk=lock.pk).exists()


def test_staff_without_permissions_sees_nothing(outsider: Client, state: Any) -> None:
    for model_name in MODELS:
        assert outsider.get(changelist(model_name)).status_code == 403
    assert outsider.get(reverse("admin:chatstate_lock_overview")).status_code == 403


# -- links and overview ------------------------------------------------------------------


def test_a_lock_links_to_its_pending_entries_and_thread_state(
    admin_client: Client, state: Any
) -> None:
    page = admin_client.get(changelist("lock"), {"q": THREAD}).content.decode()
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page)]
    pending = next(h for h in hrefs if "/pendinglockentry/?" in h)
    thread = next(h for h in hrefs if "/threadstate/?" in h)
    entries = admin_client.get(pending)
    assert rows_shown(entries) == [THREAD, THREAD]
    assert cells(entries, "owner_column") == ["worker-8", "worker-9"]
    assert rows_shown(admin_client.get(thread)) == [THREAD]


def test_a_thread_state_links_to_its_lock_and_subscription(
    admin_client: Client, state: Any
) -> None:
    row = ThreadState.objects.get(namespace="ns-a", thread_id=THREAD)
    page = admin_client.get(reverse("admin:chatstate_threadstate_change", args=[row.pk]))
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page.content.decode())]
    lock = next(h for h in hrefs if "/lock/?" in h)
    subscription = next(h for h in hrefs if "/subscription/?" in h)
    assert rows_shown(admin_client.get(lock)) == [THREAD]
    assert rows_shown(admin_client.get(subscription)) == [THREAD]
