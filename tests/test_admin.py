"""The admin: every page renders, searches and filters use indexes, actions obey permissions.

Runs in the SQLite and the PostgreSQL run; the EXPLAIN checks only where PostgreSQL plans.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.admin.indexed import EstimatedCountPaginator, distinct_values
from chatstate.models import (
    ChannelState,
    DedupeEntry,
    DedupeWindow,
    Lock,
    PendingLockEntry,
    Subscription,
    ThreadState,
)

MODELS = {
    "subscription": Subscription,
    "dedupeentry": DedupeEntry,
    "threadstate": ThreadState,
    "channelstate": ChannelState,
    "lock": Lock,
    "pendinglockentry": PendingLockEntry,
}
THREAD = "slack:C1:1700000000.1"


def changelist(model_name: str) -> str:
    return reverse(f"admin:chatstate_{model_name}_changelist")


@pytest.fixture
def state(db: None) -> dict[str, Any]:
    """Two namespaces of chat state, written through the adapter as a bot would."""
    a = DatabaseStateAdapter(namespace="ns-a")
    b = DatabaseStateAdapter(namespace="ns-b")
    for thread in (THREAD, "slack:C1:1700000000.10", "slack:C2:1"):
        a.subscribe(thread)
    b.subscribe("discord:G1:1")
    for message_id in ("m1", "m2", "m20"):
        a.claim_dedupe(("slack", message_id), 100)
    a.claim_dedupe(("discord", "m2"), 100)
    b.claim_dedupe(("slack", "m1"), 100)
    a.put_thread_state(THREAD, {"turns": 3, "topic": "<b>billing</b>"})
    b.put_thread_state("discord:G1:1", {"turns": 1})
    a.put_channel_state("slack:C1", {"topic": "support"})
    a.lock(THREAD, "worker-7", "queue", metadata={"message_id": "m1"})
    a.lock(THREAD, "worker-8", "queue", metadata={"message_id": "m2"})
    a.lock(THREAD, "worker-9", "queue", metadata={})
    a.lock("slack:C2:1", "worker-3", "reject")
    b.lock("discord:G1:1", "worker-1", "debounce")
    return {"a": a, "b": b}


def _user(django_user_model: Any, name: str, codenames: list[str]) -> Client:
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    perms = Permission.objects.filter(content_type__app_label="chatstate", codename__in=codenames)
    user.user_permissions.set(perms)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer(django_user_model: Any) -> Client:
    """Staff with every chatstate view permission and nothing else."""
    return _user(django_user_model, "viewer", [f"view_{name}" for name in MODELS])


@pytest.fixture
def outsider(django_user_model: Any) -> Client:
    """Staff without any chatstate permission."""
    return _user(django_user_model, "outsider", [])


def rows_shown(response: Any) -> list[str]:
    """The text of the first column of each result row of a changelist."""
    return [
        html.unescape(re.sub(r"<[^>]+>", "", cell))
        for cell in re.findall(
            r'<th class="field-[^"]+"[^>]*>(.*?)</th>', response.content.decode()
        )
    ]


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
    page = response.content.decode()
    assert rows_shown(response) == [THREAD]
    assert '<td class="field-owner">worker-7</td>' in page
    assert '<td class="field-strategy">queue</td>' in page
    assert '<td class="field-queue_depth">2</td>' in page
    assert re.search(r'<td class="field-held_for">\d+s</td>', page)
    assert re.search(r'<td class="field-expires">in \d+m \d+s</td>', page)


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


def test_search_matches_an_exact_id_not_a_substring(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("subscription"), {"q": THREAD})
    assert rows_shown(response) == [THREAD]
    response = admin_client.get(changelist("subscription"), {"q": "C1"})
    assert rows_shown(response) == []


def test_search_by_prefix_with_a_star(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("subscription"), {"q": "slack:C1:*"})
    assert sorted(rows_shown(response)) == sorted([THREAD, "slack:C1:1700000000.10"])


def test_search_is_case_sensitive_like_the_ids(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("subscription"), {"q": THREAD.upper()})
    assert rows_shown(response) == []


def test_dedupe_search_by_message_id_or_adapter_and_message_id(
    admin_client: Client, state: Any
) -> None:
    both = admin_client.get(changelist("dedupeentry"), {"q": "m2"}).content.decode()
    assert both.count('<th class="field-message_id">') == 2  # slack and discord
    one = admin_client.get(changelist("dedupeentry"), {"q": "discord:m2"})
    assert rows_shown(one) == ["m2"]
    assert '<td class="field-adapter">discord</td>' in one.content.decode()


def test_lock_search_by_owner(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("lock"), {"q": "worker-3"})
    assert rows_shown(response) == ["slack:C2:1"]
    response = admin_client.get(changelist("pendinglockentry"), {"q": "worker-8"})
    assert rows_shown(response) == [THREAD]


def test_namespace_filter_lists_namespaces_and_filters(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("subscription"), {"namespace": "ns-b"})
    assert rows_shown(response) == ["discord:G1:1"]
    page = response.content.decode()
    assert "?namespace=ns-a" in page and "?namespace=ns-b" in page


def test_strategy_filter(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("lock"), {"strategy__exact": "debounce"})
    assert rows_shown(response) == ["discord:G1:1"]


def test_distinct_values_reads_every_namespace(state: Any) -> None:
    assert distinct_values(DedupeEntry, "default", "namespace") == ["ns-a", "ns-b"]
    assert distinct_values(DedupeEntry, "default", "adapter", {"namespace": "ns-a"}) == [
        "discord",
        "slack",
    ]


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


@pytest.mark.run_on("postgresql")  # EXPLAIN plans are PostgreSQL's
@pytest.mark.parametrize(
    ("model_name", "term"),
    [
        ("dedupeentry", "m2"),
        ("dedupeentry", "slack:m2"),
        ("dedupeentry", "m2*"),
        ("subscription", THREAD),
        ("threadstate", "slack:C1:*"),
        ("channelstate", "slack:C1"),
    ],
)
def test_searches_can_use_an_index(
    admin_client: Client, state: Any, model_name: str, term: str
) -> None:
    """With sequential scans priced out, the search's plan reads the table only by index.

    (Lock and pending-entry searches also match owners, which have no index: those two
    tables hold live locks and queued messages only.)
    """
    table = MODELS[model_name]._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(changelist(model_name), {"q": term})
    selects = [q["sql"] for q in queries if f'FROM "{table}"' in q["sql"] and "LIMIT" in q["sql"]]
    assert selects
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for sql in selects:
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert f"Seq Scan on {table}" not in plan, plan
        cursor.execute("SET LOCAL enable_seqscan = on")


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
    operator = _user(django_user_model, "operator", ["change_lock"])
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
    assert "worker-8" in entries.content.decode() and "worker-1<" not in entries.content.decode()
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


def test_overview_counts_oldest_lock_and_deepest_queue(admin_client: Client, state: Any) -> None:
    response = admin_client.get(reverse("admin:chatstate_lock_overview"), {"namespace": "ns-a"})
    assert response.status_code == 200
    page = re.sub(r"\s+", " ", html.unescape(response.content.decode()))
    counts = dict(re.findall(r'<a href="[^"]+">([^<]+)</a></th><td class="count">(\d+)</td>', page))
    assert counts == {
        "Subscriptions": "3",
        "Dedupe entries": "4",
        "Thread states": "1",
        "Channel states": "1",
        "Locks": "2",
        "Pending lock entries": "2",
    }
    assert f">{THREAD}</a> held by worker-7 for" in page
    assert f">{THREAD}</a>: 2 pending" in page
    other = admin_client.get(reverse("admin:chatstate_lock_overview"), {"namespace": "ns-b"})
    other_page = re.sub(r"\s+", " ", html.unescape(other.content.decode()))
    assert "discord:G1:1</a> held by worker-1" in other_page


def test_overview_is_linked_from_the_app_index(admin_client: Client, viewer: Client) -> None:
    url = reverse("admin:chatstate_lock_overview")
    assert url in admin_client.get(reverse("admin:app_list", args=["chatstate"])).content.decode()
    assert viewer.get(url).status_code == 200


def test_overview_of_an_empty_database(admin_client: Client, db: None) -> None:
    response = admin_client.get(reverse("admin:chatstate_lock_overview"))
    assert response.status_code == 200
    assert "No chat state is stored yet." in response.content.decode()
