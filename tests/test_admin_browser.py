"""The admin in a real browser: Playwright for Python driving Debian's Chromium.

An operator logs in, opens a held lock, runs ``force_release`` and reads which queued
messages were dropped. Without Chromium (or Playwright) the test is skipped on a developer
machine and fails under ``CI=true``, where it must run. Set ``CHATSTATE_ADMIN_SCREENSHOTS``
to a directory to keep screenshots of each step.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatstate.adapters.database import DatabaseStateAdapter
from tests import services

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
# Outside CI a developer without the browser sees why the test did not run; under CI=true
# the test runs, and fails in ``page`` if the browser is missing.
pytestmark.append(pytest.mark.skipif(bool(MISSING) and not services.IN_CI, reason=str(MISSING)))


@pytest.fixture
def page() -> Iterator[Any]:
    """A page of a fresh headless Chromium profile (fails under CI=true if there is none)."""
    if MISSING:
        pytest.fail(f"CI=true requires the browser test to run: {MISSING}")
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
            viewport={"width": 1600, "height": 900},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def _screenshot(page: Any, name: str) -> None:
    directory = os.environ.get("CHATSTATE_ADMIN_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=True)


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
    _screenshot(page, "1-lock-changelist")

    # Open the lock: a read-only page with its metadata pretty-printed.
    page.click(f"#result_list th.field-key a:text-is('{THREAD}')")
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
