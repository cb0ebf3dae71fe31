"""Admin pages for subscriptions and thread/channel state maps; the ``unsubscribe`` action."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.admin import display, related
from chatstate.admin.base import ChatStateAdmin, NamespaceFilter
from chatstate.models import Lock, Subscription, ThreadState


def thread_targets(obj: Any, thread_id: str) -> list[tuple[str, str, dict[str, str]]]:
    """The related pages of a thread that exist; ``add_page_facts`` reads them for the page."""
    targets = [
        ("lock", "lock", "has_lock", {"key": thread_id}),
        ("subscription", "subscription", "has_subscription", {"thread_id": thread_id}),
        ("threadstate", "state", "has_state", {"thread_id": thread_id}),
    ]
    return [
        (model, label, {"namespace": obj.namespace, **params})
        for model, label, flag, params in targets
        if getattr(obj, flag, False)
    ]


class SubscriptionAdmin(ChatStateAdmin):
    """Which threads the bot follows."""

    list_display = ("thread_id_column", "subscribed_for", "related")
    list_filter = (NamespaceFilter,)
    id_fields = ("thread_id",)
    actions = ("unsubscribe",)
    fields = ("namespace", "thread_id", "created_at", "subscribed_for", "related")
    readonly_fields = fields

    def add_page_facts(self, rows: list[Any], using: str) -> None:
        related.mark_existing(rows, using, Lock, "key", "thread_id", "has_lock")
        related.mark_existing(rows, using, ThreadState, "thread_id", "thread_id", "has_state")

    thread_id_column = display.id_column("thread_id", "thread id")
    subscribed_for = display.age_column("created_at", "subscribed for")

    @admin.display(description="related")
    def related(self, obj: Subscription) -> SafeString:
        return display.related_links(self.admin_site.name, thread_targets(obj, obj.thread_id))

    @admin.action(description="Unsubscribe the selected threads", permissions=["change"])
    def unsubscribe(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Unsubscribe each selected thread through the adapter."""
        using = queryset.db
        threads = list(queryset.values_list("namespace", "thread_id"))
        for namespace, thread_id in threads:
            DatabaseStateAdapter(namespace=namespace, using=using).unsubscribe(thread_id)
        names = ", ".join(thread_id for _, thread_id in threads[:20])
        more = f" and {len(threads) - 20} more" if len(threads) > 20 else ""
        self.message_user(
            request, f"Unsubscribed {len(threads)} thread(s): {names}{more}", messages.SUCCESS
        )


class StateAdmin(ChatStateAdmin):
    """A JSON map per id: its top-level keys in the list, pretty JSON on the page."""

    @admin.display(description="value")
    def preview(self, obj: Any) -> SafeString:
        return display.state_preview(obj.value)

    @admin.display(description="value")
    def value_json(self, obj: Any) -> SafeString:
        return display.pretty_json(obj.value)

    updated_ago = display.age_column("updated_at", "updated", " ago")


class ThreadStateAdmin(StateAdmin):
    """Each thread's JSON map, with links to the thread's lock and subscription."""

    list_display = ("thread_id_column", "preview", "updated_ago", "related")
    thread_id_column = display.id_column("thread_id", "thread id")
    list_filter = (NamespaceFilter,)
    id_fields = ("thread_id",)
    fields = ("namespace", "thread_id", "updated_at", "updated_ago", "related", "value_json")
    readonly_fields = fields

    def add_page_facts(self, rows: list[Any], using: str) -> None:
        related.mark_existing(rows, using, Lock, "key", "thread_id", "has_lock")
        related.mark_existing(
            rows, using, Subscription, "thread_id", "thread_id", "has_subscription"
        )

    @admin.display(description="related")
    def related(self, obj: ThreadState) -> SafeString:
        return display.related_links(self.admin_site.name, thread_targets(obj, obj.thread_id))


class ChannelStateAdmin(StateAdmin):
    """Each channel's JSON map."""

    list_display = ("channel_id_column", "preview", "updated_ago")
    channel_id_column = display.id_column("channel_id", "channel id")
    list_filter = (NamespaceFilter,)
    id_fields = ("channel_id",)
    fields = ("namespace", "channel_id", "updated_at", "updated_ago", "value_json")
    readonly_fields = fields
