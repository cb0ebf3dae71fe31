"""The admin in a real browser: Playwright for Python driving Debian's Chromium.

An operator logs in, opens a held lock, runs ``force_release`` and reads which queued
messages were dropped; searches a channel id and finds its threads; reads the overview's
charts; reads a thread's history and requeues a dead reply. The window is 1,400 px wide,
and the lists must fit it. Chromium is a tool of the suite, not a service: ``make venv``
installs it (as root, with apt-get), and without it (or Playwright) the tests fail, saying
what to install. They run on every Django of
the matrix (5.2 in ``make test``, 6.1 in ``make matrix``): Django 6 marks the breadcrumbs up
differently, and chatstate's pages must follow.

Screenshots of every page visited are kept in ``test-artifacts/admin/django-<version>/``
(git-ignored; CI keeps the directory), or under ``CHATSTATE_ADMIN_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import django
import pytest
from django.utils import timezone

from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.models import ClaimMinute, DedupeEntry, Lock, OutboxMessage

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
THREAD = "slack:C9:1700000000.5"

pytestmark = [pytest.mark.browser]


def _browser_missing() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


MISSING = _browser_missing()


@pytest.fixture
def page() -> Iterator[Any]:
    """A page of a fresh headless Chromium profile; the test fails when there is none."""
    if MISSING:
        pytest.fail(f"the admin's browser test needs Chromium and Playwright: {MISSING}")
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="chatstate-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin"


def _screenshot(page: Any, name: str) -> None:
    """Keep a screenshot of the whole page, by Django version (see the module's docstring)."""
    base = Path(os.environ.get("CHATSTATE_ADMIN_SCREENSHOTS") or ARTIFACTS)
    directory = base / f"django-{django.get_version()}"
    directory.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


@pytest.fixture
def held_lock(transactional_db: None, django_user_model: Any) -> None:
    """A superuser, and a thread lock with two messages queued behind it."""
    django_user_model.objects.create_superuser("operator", "op@example.com", "s3cret-pass")
    adapter = DatabaseStateAdapter(namespace="prod")
    adapter.subscribe(THREAD)
    adapter.put_thread_state(THREAD, {"turns": 2})
    adapter.lock(THREAD, "worker-7", "queue", metadata={"message_id": "m100"})
    adapter.lock(THREAD, "worker-8", "queue", metadata={"message_id": "m101"})
    adapter.lock(THREAD, "worker-9", "queue", metadata={"message_id": "m102"})


def test_operator_force_releases_a_lock_in_the_browser(
    live_server: Any, held_lock: None, page: Any
) -> None:
    # (Fixture order matters: the ORM writes happen before Playwright's event loop starts.)
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/admin/login/?next=/admin/chatstate/lock/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "s3cret-pass")
    page.click("input[type=submit]")
    expect(page.locator("#result_list")).to_contain_text(THREAD)
    expect(page.locator("td.field-queue_depth").first).to_have_text("2")
    assert_fits_the_window(page)
    _screenshot(page, "1-lock-changelist")

    # Open the lock: a read-only page with its metadata pretty-printed.
    page.locator("#result_list th.field-key_column").get_by_role(
        "link", name=THREAD, exact=True
    ).click()
    expect(page.locator("pre.chatstate-json")).to_contain_text('"message_id": "m100"')
    expect(page.locator("input[name=_save]")).to_have_count(0)
    _screenshot(page, "2-lock-page")

    # Back to the list, select the lock and run force_release.
    page.go_back()
    page.check(f"#result_list tr:has-text('{THREAD}') input.action-select")
    page.select_option("select[name=action]", "force_release")
    page.click("button[name=index]")

    messages = page.locator("ul.messagelist")
    expect(messages).to_contain_text(f"Released lock '{THREAD}'")
    expect(messages).to_contain_text("dropped 2 pending entries: m101, m102")
    expect(page.locator("#result_list")).to_have_count(0)  # no lock left to list
    expect(page.locator("p.paginator")).to_contain_text("0 locks")
    _screenshot(page, "3-after-force-release")

    # The pending entries went with the lock.
    page.goto(f"{live_server.url}/admin/chatstate/pendinglockentry/")
    expect(page.locator("p.paginator")).to_contain_text("0 pending lock entries")


def login(page: Any, live_server: Any, next_url: str) -> None:
    page.goto(f"{live_server.url}/admin/login/?next={next_url}")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "s3cret-pass")
    page.click("input[type=submit]")


def assert_fits_the_window(page: Any) -> None:
    """The result table needs no sideways scrolling, and its last column is in view."""
    results = page.locator("div.results")
    overflow = results.evaluate("el => el.scrollWidth - el.clientWidth")
    assert overflow <= 0, f"the list is {overflow}px wider than its box"
    last = page.locator("#result_list thead th").last.bounding_box()
    assert last["x"] + last["width"] <= page.viewport_size["width"]


CHANNEL_THREADS = ["slack:C-support:1700000001.1", "discord:C-support:77"]
OTHER_THREADS = ["slack:C-sales:1700000002.2", "slack:C9:1700000003.3"]
#: (minutes ago, claims in that minute) drawn on the overview's chart.
CLAIMS = [(300, 4), (120, 12), (45, 30), (2, 6)]


@pytest.fixture
def traffic(transactional_db: None, django_user_model: Any) -> None:
    """A superuser; threads in channel C-support and others; claims recorded per minute;
    a queue behind a live lock and one behind an expired lock."""
    django_user_model.objects.create_superuser("operator", "op@example.com", "s3cret-pass")
    adapter = DatabaseStateAdapter(namespace="prod")
    for thread in CHANNEL_THREADS + OTHER_THREADS:
        adapter.subscribe(thread)
        adapter.put_thread_state(thread, {"turns": 2, "topic": "refund", "history": [1, 2]})
    end = timezone.now().replace(second=0, microsecond=0)
    seq = 1
    for minutes_ago, claims in CLAIMS:
        ClaimMinute.objects.create(
            namespace="prod", minute=end - timedelta(minutes=minutes_ago), first_seq=seq
        )
        seq += claims
    DedupeEntry.objects.create(namespace="prod", adapter="slack", message_id="m", seq=seq - 1)
    for owner in ("worker-1", "worker-2", "worker-3"):
        adapter.lock(THREAD, owner, "queue")
    for owner in ("worker-4", "worker-5"):
        adapter.lock("slack:C9:1700000003.3", owner, "queue")
    Lock.objects.filter(key="slack:C9:1700000003.3").update(
        expires_at=timezone.now() - timedelta(minutes=5)
    )


def test_operator_finds_a_channels_threads_by_searching_its_id(
    live_server: Any, traffic: None, page: Any
) -> None:
    from playwright.sync_api import expect

    login(page, live_server, "/admin/chatstate/threadstate/")
    expect(page.locator("#result_list")).to_contain_text(OTHER_THREADS[0])
    page.fill("#searchbar", "C-support")
    page.press("#searchbar", "Enter")
    rows = page.locator("#result_list tbody th")
    expect(rows).to_have_count(len(CHANNEL_THREADS))
    for thread in CHANNEL_THREADS:
        expect(page.locator("#result_list")).to_contain_text(thread)
    for thread in OTHER_THREADS:
        expect(page.locator("#result_list")).not_to_contain_text(thread)
    expect(page.locator("td.field-preview").first).to_contain_text("history: [2 items]")
    expect(page.locator("td.field-preview").first).to_contain_text("turns: 2")
    assert_fits_the_window(page)
    _screenshot(page, "4-search-channel")


def test_operator_reads_the_overview_charts(live_server: Any, traffic: None, page: Any) -> None:
    from playwright.sync_api import expect

    login(page, live_server, "/admin/chatstate/lock/overview/?namespace=prod")
    claims = page.locator("svg.chatstate-claims rect.chatstate-bar")
    expect(claims).to_have_count(len(CLAIMS))
    drawn = {
        int(bar.get_attribute("data-count")): bar.bounding_box()["height"] for bar in claims.all()
    }
    assert sorted(drawn) == sorted(count for _, count in CLAIMS)
    heights = [drawn[count] for count in sorted(drawn)]
    assert heights[0] > 0 and heights == sorted(heights)  # drawn, taller for more claims
    chart = page.locator("svg.chatstate-claims").bounding_box()
    assert chart["width"] > 600  # spans the page, not a thumbnail

    queues = page.locator("svg.chatstate-queues rect.chatstate-bar")
    expect(queues).to_have_count(2)
    assert queues.nth(0).get_attribute("data-key") == THREAD  # the deepest first
    assert queues.nth(0).bounding_box()["width"] > queues.nth(1).bounding_box()["width"] > 0
    assert queues.nth(1).get_attribute("data-live-holder") == "false"
    orphans = page.locator("#chatstate-orphans")
    expect(orphans).to_contain_text("slack:C9:1700000003.3")
    expect(orphans).to_contain_text("expired 5m")
    _screenshot(page, "5-overview")


@pytest.fixture
def outbox(transactional_db: None, django_user_model: Any) -> None:
    """A superuser; a thread's history; a reply that died after 10 attempts and one waiting
    (written by the ORM path's commits, on every database)."""
    django_user_model.objects.create_superuser("operator", "op@example.com", "s3cret-pass")
    adapter = DatabaseStateAdapter(namespace="prod", fast_sql=False)
    for n in range(4):
        adapter.append_to_list(f"history:{THREAD}", {"role": "user", "text": f"question {n}"})
    for message_id in ("m200", "m201"):
        with adapter.handle_message(("slack", message_id), thread_id=THREAD, owner="w") as msg:
            msg.send({"channel": "C9", "text": f"answer to {message_id}"})
    OutboxMessage.objects.filter(key="slack:m200:0").update(dead=True, attempts=10)


def test_operator_requeues_a_dead_reply_in_the_browser(
    live_server: Any, outbox: None, page: Any
) -> None:
    from playwright.sync_api import expect

    login(page, live_server, "/admin/chatstate/listhead/")
    expect(page.locator("td.field-length").first).to_have_text("4")
    expect(page.locator("td.field-newest_item").first).to_contain_text("question 3")
    assert_fits_the_window(page)
    _screenshot(page, "8-lists")

    page.goto(f"{live_server.url}/admin/chatstate/outboxmessage/?status=dead")
    expect(page.locator("td.field-status")).to_have_text(["dead"])
    assert_fits_the_window(page)
    _screenshot(page, "9-outbox-dead")
    page.check("#result_list input.action-select")
    page.select_option("select[name=action]", "requeue")
    page.click("button[name=index]")
    expect(page.locator("ul.messagelist")).to_contain_text("Requeued 1 entry.")
    expect(page.locator("#result_list")).to_have_count(0)  # none dead any more
    page.goto(f"{live_server.url}/admin/chatstate/outboxmessage/")
    expect(page.locator("td.field-status")).to_have_text(["waiting", "waiting"])
    _screenshot(page, "10-outbox-requeued")


@pytest.fixture
def new_bot(transactional_db: None, django_user_model: Any) -> None:
    """A superuser, and a bot whose first messages were claimed in the last few minutes."""
    django_user_model.objects.create_superuser("operator", "op@example.com", "s3cret-pass")
    end = timezone.now().replace(second=0, microsecond=0)
    seq = 1
    for minutes_ago, claims in NEW_BOT_CLAIMS:
        ClaimMinute.objects.create(
            namespace="fresh", minute=end - timedelta(minutes=minutes_ago), first_seq=seq
        )
        seq += claims
    DedupeEntry.objects.create(namespace="fresh", adapter="slack", message_id="m", seq=seq - 1)


#: (minutes ago, claims in that minute): a bot that started five minutes ago.
NEW_BOT_CLAIMS = [(5, 2), (3, 7), (1, 4)]


def breadcrumbs_style(page: Any) -> dict[str, Any]:
    """The breadcrumbs bar of the page: its element and the styles that make it a bar."""
    crumbs = page.locator(".breadcrumbs").first
    return crumbs.evaluate(
        """el => {
            const style = getComputedStyle(el);
            return {tag: el.tagName.toLowerCase(), background: style.backgroundColor,
                    padding: style.paddingLeft, color: style.color};
        }"""
    )


def test_the_app_index_overview_and_a_new_bots_chart_read_well(
    live_server: Any, new_bot: None, page: Any
) -> None:
    """Issue 22: on the app index the overview's link was squeezed into a one-letter column;
    on Django 6 the overview's breadcrumbs were unstyled; a new bot's 24-hour chart was one
    pixel at the right edge."""
    from playwright.sync_api import expect

    login(page, live_server, "/admin/chatstate/")
    link = page.locator("#chatstate-overview-link a")
    expect(link).to_have_text("Namespace overview")
    lines = link.evaluate("el => el.getClientRects().length")
    assert lines == 1, f"the link wraps onto {lines} lines"
    assert link.bounding_box()["width"] > 100
    _screenshot(page, "6-app-index")

    # Django's own page: what the breadcrumbs look like in this Django.
    page.goto(f"{live_server.url}/admin/chatstate/lock/")
    django_crumbs = breadcrumbs_style(page)
    assert django_crumbs["background"] not in ("rgba(0, 0, 0, 0)", "transparent")

    link_url = f"{live_server.url}/admin/chatstate/lock/overview/?namespace=fresh"
    page.goto(link_url)
    assert breadcrumbs_style(page) == django_crumbs
    expect(page.locator(".breadcrumbs")).to_contain_text("Namespace overview")
    expect(page.locator("#chatstate-claims h2")).to_have_text(
        "Messages claimed per minute, last hour (UTC)"
    )
    chart = page.locator("svg.chatstate-claims").bounding_box()
    bars = page.locator("svg.chatstate-claims rect.chatstate-bar")
    expect(bars).to_have_count(len(NEW_BOT_CLAIMS))
    boxes = [bar.bounding_box() for bar in bars.all()]
    assert all(box["width"] >= 10 for box in boxes), boxes  # a minute is 1/60 of the plot
    # The oldest minute, five minutes back, is drawn well inside the chart, not at its edge.
    assert boxes[0]["x"] < chart["x"] + chart["width"] * 0.95 - 3 * boxes[0]["width"]
    _screenshot(page, "7-overview-new-bot")
