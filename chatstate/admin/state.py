"""Admin pages for subscriptions and thread/channel state maps; the ``unsubscribe`` action."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.admin import display
from chatstate.admin.base import ChatStateAdmin, NamespaceFilter
from chatstate.models import Subscription, ThreadState


class SubscriptionAdmin(ChatStateAdmin):
    """Which threads the bot follows."""

    list_display = ("thread_id", "namespace", "created_at", "subscribed_for", "related")
    list_filter = (NamespaceFilter,)
    id_fields = ("thread_id",)
    actions = ("unsubscribe",)
    fields = ("namespace", "thread_id", "created_at", "subscribed_for", "related")
    readonly_fields = fields

    @admin.display(description="subscribed for")
    def subscribed_for(self, obj: Subscription) -> str:
        return display.age(obj.created_at, self.now())

    @admin.display(description="related")
    def related(self, obj: Subscription) -> SafeString:
        site = self.admin_site.name
        return display.thread_links(site, obj.namespace, obj.thread_id, exclude="subscription")

    @admin.action(description="Unsubscribe the selected threads", permissions=["change"])
    def unsubscribe(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Unsubscribes each selected thread through the adapter."""
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
    """A JSON map per id: a one-line preview in the list, pretty JSON on the page."""

    @admin.display(description="value")
    def preview(self, obj: Any) -> str:
        return display.short_json(obj.value)

    @admin.display(description="value")
    def value_json(self, obj: Any) -> SafeString:
        return display.pretty_json(obj.value)

    @admin.display(description="updated")
    def updated_ago(self, obj: Any) -> str:
        return f"{display.age(obj.updated_at, self.now())} ago"


class ThreadStateAdmin(StateAdmin):
    """Each thread's JSON map, with links to the thread's lock and subscription."""

    list_display = ("thread_id", "namespace", "preview", "updated_at", "updated_ago", "related")
    list_filter = (NamespaceFilter,)
    id_fields = ("thread_id",)
    fields = ("namespace", "thread_id", "updated_at", "updated_ago", "related", "value_json")
    readonly_fields = fields

    @admin.display(description="related")
    def related(self, obj: ThreadState) -> SafeString:
        site = self.admin_site.name
        return display.thread_links(site, obj.namespace, obj.thread_id, exclude="threadstate")


class ChannelStateAdmin(StateAdmin):
    """Each channel's JSON map."""

    list_display = ("channel_id", "namespace", "preview", "updated_at", "updated_ago")
    list_filter = (NamespaceFilter,)
    id_fields = ("channel_id",)
    fields = ("namespace", "channel_id", "updated_at", "updated_ago", "value_json")
    readonly_fields = fields
