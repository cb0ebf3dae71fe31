"""Admin pages for held locks and the entries queued behind them; the ``force_release`` action."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils.safestring import SafeString

from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.admin import display, overview
from chatstate.admin.base import ChatStateAdmin, NamespaceFilter
from chatstate.models import Lock, PendingLockEntry
from chatstate.types import PendingEntry


def queue_depth_subquery() -> Subquery:
    """Per lock row, how many entries wait behind it (an index range per row shown)."""
    pending = (
        PendingLockEntry.objects.filter(namespace=OuterRef("namespace"), key=OuterRef("key"))
        .order_by()
        .values("namespace", "key")
        .annotate(depth=Count("id"))
        .values("depth")
    )
    return Subquery(pending, output_field=IntegerField())


def entry_label(entry: PendingEntry) -> str:
    """How a dropped pending entry is named to the operator: its message id, else its owner."""
    message_id = entry.metadata.get("message_id") if isinstance(entry.metadata, dict) else None
    return str(message_id) if message_id not in (None, "") else entry.owner


class LockAdmin(ChatStateAdmin):
    """Who holds each thread lock, since when, until when, and how deep its queue is."""

    list_display = (
        "key",
        "namespace",
        "owner",
        "strategy",
        "acquired_at",
        "held_for",
        "expires",
        "queue_depth",
        "related",
    )
    list_filter = (NamespaceFilter, "strategy")
    id_fields = ("key",)
    owner_fields = ("owner",)
    sortable_by = ("acquired_at", "expires_at")
    actions = ("force_release",)
    fields = (
        "namespace",
        "key",
        "owner",
        "strategy",
        "acquired_at",
        "held_for",
        "expires_at",
        "expires",
        "queue_depth",
        "metadata_json",
        "related",
    )
    readonly_fields = fields

    def get_urls(self) -> list[URLPattern]:
        """Adds the namespace overview (``admin:chatstate_lock_overview``)."""
        overview_page = self.admin_site.admin_view(self.overview_view)
        return [
            path("overview/", overview_page, name="chatstate_lock_overview"),
            *super().get_urls(),
        ]

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        return overview.overview_view(self, request)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        depth = Coalesce(queue_depth_subquery(), Value(0))
        return super().get_queryset(request).annotate(queue_depth=depth)

    @admin.display(description="held for")
    def held_for(self, obj: Lock) -> str:
        return display.age(obj.acquired_at, self.now())

    @admin.display(description="lease")
    def expires(self, obj: Lock) -> str:
        return display.expiry(obj.expires_at, self.now())

    @admin.display(description="queue depth")
    def queue_depth(self, obj: Any) -> int:
        return int(obj.queue_depth)

    @admin.display(description="metadata")
    def metadata_json(self, obj: Lock) -> SafeString:
        return display.pretty_json(obj.metadata)

    @admin.display(description="related")
    def related(self, obj: Lock) -> SafeString:
        site = self.admin_site.name
        pending = display.changelist_url(
            site, "pendinglockentry", namespace=obj.namespace, key=obj.key
        )
        state = display.changelist_url(
            site, "threadstate", namespace=obj.namespace, thread_id=obj.key
        )
        return SafeString(
            f"{display.link(pending, 'pending entries')} · {display.link(state, 'thread state')}"
        )

    @admin.action(
        description="Force-release the selected locks (drops what was queued behind them)",
        permissions=["change"],
    )
    def force_release(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Releases each selected lock through the adapter and reports what was dropped."""
        using = queryset.db
        for namespace, key, owner in queryset.values_list("namespace", "key", "owner"):
            adapter = DatabaseStateAdapter(namespace=namespace, using=using)
            dropped = adapter.force_release_lock(key)
            where = f"lock {key!r} (namespace {namespace!r}, held by {owner!r})"
            if dropped:
                names = ", ".join(entry_label(entry) for entry in dropped)
                self.message_user(
                    request,
                    f"Released {where}; dropped {len(dropped)} pending "
                    f"{'entry' if len(dropped) == 1 else 'entries'}: {names}",
                    messages.WARNING,
                )
            else:
                self.message_user(
                    request, f"Released {where}; nothing was pending.", messages.SUCCESS
                )


class PendingLockEntryAdmin(ChatStateAdmin):
    """What waits behind each lock, in arrival order."""

    list_display = (
        "key",
        "namespace",
        "owner",
        "strategy",
        "message_id",
        "enqueued_at",
        "waiting_for",
        "lock_link",
    )
    list_filter = (NamespaceFilter, "strategy")
    id_fields = ("key",)
    owner_fields = ("owner",)
    ordering = ["namespace", "key", "id"]
    sortable_by = ("enqueued_at",)
    fields = (
        "namespace",
        "key",
        "owner",
        "strategy",
        "enqueued_at",
        "waiting_for",
        "metadata_json",
        "lock_link",
    )
    readonly_fields = fields

    @admin.display(description="message id")
    def message_id(self, obj: PendingLockEntry) -> str:
        value = obj.metadata.get("message_id") if isinstance(obj.metadata, dict) else None
        return "-" if value is None else str(value)

    @admin.display(description="waiting for")
    def waiting_for(self, obj: PendingLockEntry) -> str:
        return display.age(obj.enqueued_at, self.now())

    @admin.display(description="metadata")
    def metadata_json(self, obj: PendingLockEntry) -> SafeString:
        return display.pretty_json(obj.metadata)

    @admin.display(description="lock")
    def lock_link(self, obj: PendingLockEntry) -> SafeString:
        url = display.changelist_url(
            self.admin_site.name, "lock", namespace=obj.namespace, key=obj.key
        )
        return display.link(url, "lock")
