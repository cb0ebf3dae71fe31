"""The namespace overview: claims per minute and queue depths drawn as inline SVG, queues
with no live holder, counts per model. Runs in the SQLite and the PostgreSQL run."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any
from xml.etree import ElementTree

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from chatstate.admin import activity, charts
from chatstate.models import ClaimMinute, DedupeEntry, Lock, PendingLockEntry
from tests.admin.helpers import MODELS, THREAD, populate_state, staff_client

OVERVIEW = "admin:chatstate_lock_overview"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def state(db: None) -> dict[str, Any]:
    return populate_state()


def overview(client: Client, namespace: str) -> str:
    response = client.get(reverse(OVERVIEW), {"namespace": namespace})
    assert response.status_code == 200
    return response.content.decode()


def chart(page: str, name: str) -> ElementTree.Element:
    """The chart ``chatstate-<name>`` of the page, parsed as XML (so it is well-formed)."""
    found = re.search(rf'<svg class="chatstate-chart chatstate-{name}".*?</svg>', page, re.S)
    assert found, f"no {name} chart"
    return ElementTree.fromstring(found.group(0))


def bars(svg: ElementTree.Element) -> list[ElementTree.Element]:
    return [rect for rect in svg.iter(f"{SVG}rect") if rect.get("class") == "chatstate-bar"]


def section(page: str, table_id: str) -> str:
    """The HTML of the table ``table_id``, whitespace collapsed, entities decoded."""
    found = re.search(rf'<table id="{table_id}">.*?</table>', page, re.S)
    assert found, table_id
    return re.sub(r"\s+", " ", html.unescape(found.group(0)))


# -- claims per minute -------------------------------------------------------------------


@pytest.fixture
def claims(db: None) -> dict[str, Any]:
    """Namespace ns-c: claims recorded in three minutes of the last 24 hours (5, 14 and 5
    messages; the last counted up to the newest dedupe entry) and one a day before."""
    now = timezone.now()
    end = activity.minute_of(now)
    minutes = {
        "day-old": end - timedelta(hours=25),
        "first": end - timedelta(minutes=30),
        "second": end - timedelta(minutes=29),
        "last": end - timedelta(minutes=3),
    }
    for name, first_seq in (("day-old", 1), ("first", 1), ("second", 6), ("last", 20)):
        ClaimMinute.objects.create(namespace="ns-c", minute=minutes[name], first_seq=first_seq)
    DedupeEntry.objects.create(namespace="ns-c", adapter="slack", message_id="m24", seq=24)
    return {"now": now, "end": end, **minutes}


def test_claims_per_minute_are_drawn_one_bar_per_minute(
    admin_client: Client, claims: dict[str, Any]
) -> None:
    page = overview(admin_client, "ns-c")
    svg = chart(page, "claims")
    drawn = {bar.get("data-minute"): int(bar.get("data-count") or 0) for bar in bars(svg)}
    iso = {name: f"{claims[name]:%Y-%m-%dT%H:%M}Z" for name in ("first", "second", "last")}
    assert drawn == {iso["first"]: 5, iso["second"]: 14, iso["last"]: 5}
    heights = {bar.get("data-count"): float(bar.get("height") or 0) for bar in bars(svg)}
    assert heights["14"] == pytest.approx(heights["5"] * 14 / 5)
    axis = [text.text for text in svg.iter(f"{SVG}text")]
    assert "20" in axis and "0" in axis  # the y axis runs to a round 20
    tooltips = [title.text for title in svg.iter(f"{SVG}title")]
    assert f"{claims['second']:%H:%M} UTC: 14 messages claimed" in tooltips
    assert "24 claimed; peak 14 in the minute of" in page


def test_claims_per_minute_count_up_to_the_next_recorded_minute(claims: dict[str, Any]) -> None:
    counts, end = activity.claims_per_minute("default", "ns-c", claims["now"])
    assert end == claims["end"]
    assert [(c.minute, c.count) for c in counts] == [
        (claims["first"], 5),
        (claims["second"], 14),
        (claims["last"], 5),
    ]


def test_claims_per_minute_never_count_below_zero(db: None) -> None:
    """After a window was emptied its sequence restarts: that minute counts 0, not less."""
    end = activity.minute_of(timezone.now())
    ClaimMinute.objects.create(namespace="ns-d", minute=end - timedelta(minutes=2), first_seq=90)
    ClaimMinute.objects.create(namespace="ns-d", minute=end - timedelta(minutes=1), first_seq=1)
    DedupeEntry.objects.create(namespace="ns-d", adapter="slack", message_id="m3", seq=3)
    counts, _ = activity.claims_per_minute("default", "ns-d", timezone.now())
    assert [c.count for c in counts] == [0, 3]


def test_a_minute_recorded_ahead_of_the_clock_ends_the_chart(db: None) -> None:
    now = timezone.now()
    ahead = activity.minute_of(now) + timedelta(minutes=2)
    ClaimMinute.objects.create(namespace="ns-e", minute=ahead, first_seq=1)
    counts, end = activity.claims_per_minute("default", "ns-e", now)
    assert end == ahead
    assert [(c.minute, c.count) for c in counts] == [(ahead, 0)]  # no dedupe entry left
    assert bars(ElementTree.fromstring(charts.claims_chart(counts, end))) == []


def test_no_claims_recorded(admin_client: Client, state: Any) -> None:
    ClaimMinute.objects.all().delete()  # the state's own claims recorded their minute
    page = overview(admin_client, "ns-a")
    assert "No claims recorded in the last 24 hours." in page
    assert "<svg" not in page.split("chatstate-claims", 1)[1].split("chatstate-queue-depths")[0]


@pytest.mark.parametrize(("value", "top"), [(0, 1), (1, 1), (3, 5), (14, 20), (50, 50), (51, 100)])
def test_the_axis_runs_to_a_round_number(value: int, top: int) -> None:
    assert charts.nice_ceiling(value) == top


# -- queues ------------------------------------------------------------------------------

ODD_KEY = 'slack:C<&>"9:1'  # ids are any text: the chart escapes them


@pytest.fixture
def queues(state: dict[str, Any]) -> dict[str, Any]:
    """In ns-a: THREAD held by a live lock with 2 queued; slack:C5:1 with 3 queued behind
    an expired lock; ODD_KEY with 1 queued and no lock at all (queued 2 hours ago)."""
    a = state["a"]
    for owner in ("worker-1", "worker-2", "worker-3", "worker-4"):
        a.lock("slack:C5:1", owner, "queue")
    Lock.objects.filter(key="slack:C5:1").update(expires_at=timezone.now() - timedelta(minutes=7))
    PendingLockEntry.objects.create(
        namespace="ns-a",
        key=ODD_KEY,
        owner="worker-6",
        strategy="queue",
        metadata={},
        enqueued_at=timezone.now() - timedelta(hours=2),
    )
    return state


def test_queue_depths_are_drawn_deepest_first_orphans_marked(
    admin_client: Client, queues: Any
) -> None:
    svg = chart(overview(admin_client, "ns-a"), "queues")
    drawn = [(b.get("data-key"), b.get("data-depth"), b.get("data-live-holder")) for b in bars(svg)]
    assert drawn == [("slack:C5:1", "3", "false"), (THREAD, "2", "true"), (ODD_KEY, "1", "false")]
    widths = [float(b.get("width") or 0) for b in bars(svg)]
    assert widths[0] > widths[1] > widths[2] > 0
    fills = {b.get("data-live-holder"): b.get("fill") for b in bars(svg)}
    assert fills["true"] != fills["false"]
    links = [a.get("href") for a in svg.iter(f"{SVG}a")]
    assert len(links) == 3 and all(link and "/pendinglockentry/?" in link for link in links)


def test_queues_with_no_live_holder_are_listed(admin_client: Client, queues: Any) -> None:
    table = section(overview(admin_client, "ns-a"), "chatstate-orphans")
    rows = re.findall(r'<tr><th scope="row"><a href="[^"]+">(.*?)</a></th>(.*?)</tr>', table)
    assert [key for key, _ in rows] == [ODD_KEY, "slack:C5:1"]  # the oldest entry first
    odd, expired = (re.sub(r"<[^>]+>", "|", cells) for _, cells in rows)
    assert "|1|" in odd and "(2h 0" in odd and "missing" in odd
    assert "|3|" in expired and "expired 7m" in expired
    assert THREAD not in table  # its holder is alive


def test_no_queue(admin_client: Client, db: None) -> None:
    DedupeEntry.objects.create(namespace="ns-q", adapter="slack", message_id="m1", seq=1)
    page = overview(admin_client, "ns-q")
    assert "No message is queued." in page
    assert "none: every queued message waits behind a live lock" in page


def test_the_overview_costs_the_same_queries_at_any_size(
    admin_client: Client, queues: Any, claims: Any
) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            overview(admin_client, "ns-a")
        return len(captured)

    end = activity.minute_of(timezone.now())
    ClaimMinute.objects.all().delete()  # the fixtures' claims recorded their minute
    ClaimMinute.objects.create(namespace="ns-a", minute=end, first_seq=1)
    before = queries()
    for i in range(30):
        PendingLockEntry.objects.create(
            namespace="ns-a",
            key=f"slack:C7:{i}",
            owner="w",
            strategy="queue",
            metadata={},
            enqueued_at=timezone.now(),
        )
        ClaimMinute.objects.create(
            namespace="ns-a", minute=end - timedelta(minutes=100 + i), first_seq=i
        )
    assert queries() == before


# -- counts, links -----------------------------------------------------------------------


def test_overview_counts_oldest_lock_and_deepest_queue(admin_client: Client, state: Any) -> None:
    page = overview(admin_client, "ns-a")
    counts = dict(
        re.findall(
            r'<a href="[^"]+">([^<]+)</a></th><td class="count">(\d+)</td>',
            section(page, "chatstate-counts"),
        )
    )
    assert counts == {
        "Subscriptions": "3",
        "Dedupe entries": "4",
        "Thread states": "1",
        "Channel states": "1",
        "Locks": "2",
        "Pending lock entries": "2",
        "Lists": "2",
        "Outbox": "3",
    }
    locks = section(page, "chatstate-locks")
    assert f">{THREAD}</a> held by worker-7 for" in locks
    assert re.search(r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", locks)
    assert f">{THREAD}</a>: 2 pending" in locks
    other = section(overview(admin_client, "ns-b"), "chatstate-locks")
    assert "discord:G1:1</a> held by worker-1" in other


def test_overview_is_linked_from_the_app_index(
    admin_client: Client, django_user_model: Any
) -> None:
    url = reverse(OVERVIEW)
    assert url in admin_client.get(reverse("admin:app_list", args=["chatstate"])).content.decode()
    viewer = staff_client(django_user_model, "viewer", [f"view_{name}" for name in MODELS])
    assert viewer.get(url).status_code == 200


def test_overview_of_an_empty_database(admin_client: Client, db: None) -> None:
    response = admin_client.get(reverse(OVERVIEW))
    assert response.status_code == 200
    assert "No chat state is stored yet." in response.content.decode()


# -- the window of the claims chart (issue 22: a new bot's day was one pixel wide) ------------


@pytest.mark.parametrize(
    ("minutes_ago", "span"),
    [([0], 60), ([59], 60), ([60], 180), ([300, 2], 360), ([700], 720), ([1439], 1440)],
)
def test_the_window_is_the_shortest_that_holds_the_data(minutes_ago: list[int], span: int) -> None:
    end = activity.minute_of(timezone.now())
    counts = [charts.MinuteCount(end - timedelta(minutes=m), 3) for m in minutes_ago]
    assert charts.chart_span(counts, end) == span


def test_a_new_bots_minutes_fill_the_last_hour(
    admin_client: Client, claims: dict[str, Any]
) -> None:
    """The claims of the fixture fall in the last half hour: the chart shows the last hour,
    each minute a sixtieth of the plot (24 of its 1,440 units), grid lines every 10 minutes."""
    page = overview(admin_client, "ns-c")
    assert "Messages claimed per minute, last hour (UTC)" in page
    svg = chart(page, "claims")
    widths = {float(bar.get("width") or 0) for bar in bars(svg)}
    assert widths == {24.0}
    xs = sorted(float(bar.get("x") or 0) for bar in bars(svg))
    assert xs[0] == 72 + 24 * 29  # "first", 30 minutes ago, is minute 29 of the 60 shown
    labels = [text.text for text in svg.iter(f"{SVG}text") if ":" in (text.text or "")]
    assert len(labels) in (5, 6) and all(label.endswith("0") for label in labels)


def breadcrumbs_markup(page: str) -> str:
    """The opening tag of a page's breadcrumbs bar (``<div class="breadcrumbs">`` up to
    Django 5.2, ``<ol class="breadcrumbs">`` from 6.0: each Django styles only its own)."""
    found = re.search(r'<(div|ol) class="breadcrumbs">', page)
    assert found is not None, "no breadcrumbs"
    return found[1]


def test_chatstates_pages_mark_breadcrumbs_up_as_this_django_does(
    admin_client: Client, state: Any
) -> None:
    """Issue 22: on Django 6 the overview's breadcrumbs were a ``div`` Django no longer styles
    (the real-browser test compares the styles)."""
    django_own = breadcrumbs_markup(
        admin_client.get(reverse("admin:chatstate_lock_changelist")).content.decode()
    )
    assert breadcrumbs_markup(overview(admin_client, "ns-a")) == django_own
    rows = list(DedupeEntry.objects.filter(namespace="ns-a")[:2])
    confirm = admin_client.post(
        reverse("admin:chatstate_dedupeentry_changelist"),
        {"action": "delete_entries", "index": "0", "_selected_action": [r.pk for r in rows]},
    )
    assert "Delete 2 dedupe" in confirm.content.decode()
    assert breadcrumbs_markup(confirm.content.decode()) == django_own
