"""What the admin test modules share: the chat state they inspect and how they read pages."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.models import (
    ChannelState,
    DedupeEntry,
    ListHead,
    Lock,
    OutboxMessage,
    PendingLockEntry,
    Subscription,
    ThreadState,
)
from tests.factories import OutboxMessageFactory

MODELS = {
    "subscription": Subscription,
    "dedupeentry": DedupeEntry,
    "threadstate": ThreadState,
    "channelstate": ChannelState,
    "lock": Lock,
    "pendinglockentry": PendingLockEntry,
    "listhead": ListHead,
    "outboxmessage": OutboxMessage,
}
THREAD = "slack:C1:1700000000.1"
#: The changelists whose rows are threads.
THREAD_PAGES = ["subscription", "threadstate", "lock", "pendinglockentry"]


def changelist(model_name: str) -> str:
    return reverse(f"admin:chatstate_{model_name}_changelist")


def populate_state() -> dict[str, Any]:
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
    for n in range(3):
        a.append_to_list(f"history:{THREAD}", {"role": "user", "text": f"<i>turn {n}</i>"})
    a.append_to_list("user:U1", "hello", ttl=600)
    b.append_to_list("history:discord:G1:1", {"role": "bot"}, max_length=10)
    populate_outbox()
    return {"a": a, "b": b}


def populate_outbox() -> None:
    """Outbox entries as commits write them (rows made directly: a commit would also claim
    dedupe keys, which the other pages' tests count): two waiting in ``ns-a`` (the second
    failed twice, due again in a minute), one dead, one in ``ns-b``."""
    later = timezone.now() + timedelta(minutes=1)
    entries = [
        ("ns-a", THREAD, "slack:m1:0", {"text": "<b>hi</b>"}, {}),
        ("ns-a", THREAD, "slack:m2:0", {"text": "again"}, {"attempts": 2, "due_at": later}),
        ("ns-a", "slack:C2:1", "slack:m20:0", "plain", {"attempts": 10, "dead": True}),
        ("ns-b", "discord:G1:1", "discord:m9:0", {"text": "hello"}, {}),
    ]
    for namespace, thread_id, key, payload, more in entries:
        OutboxMessageFactory(
            namespace=namespace, thread_id=thread_id, key=key, payload=payload, **more
        )


def populate_channels(a: DatabaseStateAdapter) -> list[str]:
    """Threads of the channel C-support on two platforms, and of a look-alike channel."""
    threads = ["slack:C-support:1700000001.1", "discord:C-support:9", "slack:C-supportive:2"]
    for thread in threads:
        a.subscribe(thread)
        a.put_thread_state(thread, {"turns": 1})
        a.lock(thread, "worker-4", "queue")
        a.lock(thread, "worker-5", "queue", metadata={"message_id": f"q-{thread}"})
    a.put_channel_state("slack:C-support", {"topic": "support"})
    return threads


def staff_client(django_user_model: Any, name: str, codenames: list[str]) -> Client:
    """A logged-in staff user with these chatstate permissions only."""
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    perms = Permission.objects.filter(content_type__app_label="chatstate", codename__in=codenames)
    user.user_permissions.set(perms)
    client = Client()
    client.force_login(user)
    return client


def text(fragment: str) -> str:
    """An HTML fragment's text (tags stripped, entities decoded; a ``<br>`` is a newline)."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment.replace("<br>", "\n")))


def rows_shown(response: Any) -> list[str]:
    """The text of the first column of each result row of a changelist."""
    page = response.content.decode()
    return [text(cell) for cell in re.findall(r'<th class="field-[^"]+"[^>]*>(.*?)</th>', page)]


def cells(response: Any, field: str) -> list[str]:
    """The text of each ``td.field-<field>`` cell of a changelist."""
    page = response.content.decode()
    return [
        text(cell) for cell in re.findall(rf'<td class="field-{field}"[^>]*>(.*?)</td>', page, re.S)
    ]
