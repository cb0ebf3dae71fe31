"""The public API of an installed chatstate, inside a fresh ``startproject`` project.

Run by ``ci/wheel-smoke.sh`` with the clean venv's Python, from the project's directory,
after ``migrate``. It exits non-zero (with what failed) unless: chatstate is imported from
the venv (not from a source tree), its code triggers no deprecation warning, and
subscriptions, the ``handle_message`` cycle (sync and async), locks with a queue,
thread/channel state, a snapshot round trip and the admin pages (every template the app
ships) work on the project's database.
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smoke.settings")
# A deprecation that chatstate's code triggers fails the smoke (Django's RemovedIn...
# warnings are attributed to the caller's module).
for category in (DeprecationWarning, PendingDeprecationWarning):
    warnings.filterwarnings("error", category=category, module="chatstate")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

import chatstate  # noqa: E402
from chatstate import LockResult, Snapshot, get_adapter  # noqa: E402
from chatstate.models import DedupeEntry, Lock, ThreadState  # noqa: E402


def check(condition: object, what: str) -> None:
    """Stop the smoke with ``what`` when ``condition`` is false."""
    if not condition:
        raise SystemExit(f"wheel smoke FAILED: {what}")


def installed_from_venv() -> None:
    where = Path(chatstate.__file__).resolve()
    check(Path(sys.prefix).resolve() in where.parents, f"chatstate imported from {where}")
    print(f"chatstate from {where.parent}, Django {django.get_version()}, {connection.vendor}")


def api() -> None:
    store = get_adapter()
    check(not store.is_subscribed("slack:C1:1"), "a new namespace has no subscription")
    store.subscribe("slack:C1:1")
    check(store.is_subscribed("slack:C1:1"), "subscribe")

    with store.handle_message(
        ("slack", "m1"),
        thread_id="slack:C1:1",
        owner="web-1",
        strategy="queue",
        metadata={"text": "hello"},
    ) as msg:
        check(msg.acquired and not msg.duplicate and msg.subscribed, f"first delivery: {msg!r}")
        msg.state["turns"] = msg.state.get("turns", 0) + 1
    with store.handle_message(
        ("slack", "m1"), thread_id="slack:C1:1", owner="web-2", strategy="queue"
    ) as again:
        check(again.duplicate and not again.acquired, f"redelivery: {again!r}")
    check(store.thread_state("slack:C1:1") == {"turns": 1}, "state written by the cycle")

    check(store.lock("slack:C1:1", "web-3") == LockResult.ACQUIRED, "lock a free thread")
    queued = store.lock("slack:C1:1", "web-4", strategy="queue", metadata={"message_id": "m2"})
    check(queued == LockResult.QUEUED, f"queue behind the holder: {queued}")
    pending = store.release_lock("slack:C1:1", "web-3")
    check([p.metadata for p in pending] == [{"message_id": "m2"}], f"pending: {pending}")

    store.put_channel_state("C1", {"topic": "support"})
    store.update_thread_state("slack:C1:1", lambda s: {**s, "turns": s["turns"] + 1})
    check(store.thread_state("slack:C1:1") == {"turns": 2}, "update_thread_state")

    async def async_cycle() -> None:
        async with store.ahandle_message(
            ("slack", "m3"), thread_id="slack:C1:2", owner="asgi-1", strategy="reject"
        ) as amsg:
            check(amsg.acquired, f"async cycle: {amsg!r}")
            amsg.state["seen"] = True
        check(await store.athread_state("slack:C1:2") == {"seen": True}, "async state")

    asyncio.run(async_cycle())

    snap = store.snapshot()
    text = snap.to_json()
    copy = type(store).from_snapshot(Snapshot.from_json(text), namespace="smoke-copy")
    check(copy.snapshot() == snap, "snapshot -> JSON -> from_snapshot gives the same state")
    check(copy.is_duplicate(("slack", "m1")), "the copy knows the handled message")
    print(f"api: ok ({len(text)} bytes of snapshot JSON)")


def admin() -> None:
    """Every admin page the app adds renders (so each shipped template is found)."""
    user = get_user_model().objects.create_superuser("smoke", "smoke@example.invalid", "x")
    client = Client()
    client.force_login(user)
    store = get_adapter()
    store.lock("held", "web-9")
    store.lock("held", "web-10", strategy="queue", metadata={"message_id": "m9"})
    pages = [reverse("admin:index"), reverse("admin:app_list", args=["chatstate"])]
    for model in (
        "subscription",
        "dedupeentry",
        "threadstate",
        "channelstate",
        "lock",
        "pendinglockentry",
    ):
        pages.append(reverse(f"admin:chatstate_{model}_changelist"))
    pages.append(reverse("admin:chatstate_lock_overview"))
    mine = {"namespace": store.namespace}
    lock = Lock.objects.get(key="held", **mine)
    state = ThreadState.objects.get(thread_id="slack:C1:1", **mine)
    pages.append(reverse("admin:chatstate_lock_change", args=[lock.pk]))
    pages.append(reverse("admin:chatstate_threadstate_change", args=[state.pk]))
    for page in pages:
        response = client.get(page)
        check(response.status_code == 200, f"GET {page}: {response.status_code}")
    entry = DedupeEntry.objects.get(message_id="m1", **mine)
    confirm = client.post(
        reverse("admin:chatstate_dedupeentry_changelist"),
        {"action": "delete_entries", "_selected_action": [entry.pk]},
    )
    check(
        confirm.status_code == 200 and b"m1" in confirm.content,
        f"the delete confirmation page: {confirm.status_code}",
    )
    print(f"admin: ok ({len(pages)} pages and the delete confirmation)")


if __name__ == "__main__":
    installed_from_venv()
    api()
    admin()
