"""Admin pages for held locks and the entries queued behind them; the ``force_release`` action."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils.html import format_html
from django.utils.safestring import SafeString

from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.admin import display, overview, related, search
from chatstate.admin.base import ChatStateAdmin, NamespaceFilter
from chatstate.admin.search import SearchScope
from chatstate.models import Lock, PendingLockEntry, Subscription, ThreadState
from chatstate.types import PendingEntry, from_iso


def entry_label(entry: PendingEntry) -> str:
    """How a dropped pending entry is named to the operator: its message id, else its owner."""
    message_id = entry.metadata.get("message_id") if isinstance(entry.metadata, dict) else None
    return str(message_id) if message_id not in (None, "") else entry.owner


def holder_names(holders: dict[str, Any] | None) -> str:
    """The owners of a key's slots, in arrival order, for a message."""
    ordered = sorted((holders or {}).items(), key=lambda h: (h[1]["acquired_at"], h[0]))
    return ", ".join(repr(owner) for owner, _ in ordered)


class LockAdmin(ChatStateAdmin):
    """Who holds each thread lock, since when, until when, and how deep its queue is.

    A key held by slots shows "2 holders"."""

    list_display = (
        "key_column",
        "owner_column",
        "strategy",
        "held_for",
        "expires",
        "queue_depth",
        "related",
    )
    list_filter = (NamespaceFilter, "strategy")
    id_fields = ("key",)
    owner_fields = ("owner",)
    scan_search = True
    sortable_by = ("held_for", "expires")
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
        "holders_table",
        "queue_depth",
        "metadata_json",
        "related",
    )
    readonly_fields = fields

    def get_urls(self) -> list[URLPattern]:
        """Add the namespace overview, ``admin:chatstate_lock_overview``."""
        overview_page = self.admin_site.admin_view(self.overview_view)
        return [
            path("overview/", overview_page, name="chatstate_lock_overview"),
            *super().get_urls(),
        ]

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        return overview.overview_view(self, request)

    def term_filter(self, term: str, scope: SearchScope) -> Q:
        """Keys and owners by substring, slot holders' owners too."""
        return super().term_filter(term, scope) | search.holders_condition(term, scope)

    def add_page_facts(self, rows: list[Any], using: str) -> None:
        related.mark_queue_depths(rows, using)
        related.mark_existing(rows, using, ThreadState, "thread_id", "key", "has_state")
        related.mark_existing(rows, using, Subscription, "thread_id", "key", "has_subscription")

    key_column = display.id_column("key", "key")
    held_for = display.age_column("acquired_at", "held for")

    @admin.display(description="owner", ordering="owner")
    def owner_column(self, obj: Lock) -> SafeString:
        """The owner, or for a key held by slots how many hold it, like ``2 holders``.

        The detail page names their owners."""
        if obj.holders is not None:
            return format_html('<span title="{}">{}</span>', holder_names(obj.holders), obj.held_by)
        return display.breakable(obj.owner)

    @admin.display(description="slot holders")
    def holders_table(self, obj: Lock) -> SafeString:
        """Each slot holder of a capped ``concurrent`` key, in arrival order.

        It shows its owner, since when, its lease and its metadata. A lock shows "-"."""
        if obj.holders is None:
            return SafeString("-")
        now = self.now()
        rows = [
            format_html(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                owner,
                display.when(from_iso(holder["acquired_at"]), now, " ago"),
                display.expiry(from_iso(holder["expires_at"]), now),
                display.short_json(holder.get("metadata") or {}),
            )
            for owner, holder in sorted(
                obj.holders.items(), key=lambda h: (h[1]["acquired_at"], h[0])
            )
        ]
        return format_html(
            '<table class="chatstate-holders"><tr><th>owner</th><th>since</th><th>lease</th>'
            "<th>metadata</th></tr>{}</table>",
            SafeString("".join(rows)),
        )

    @admin.display(description="lease", ordering="expires_at")
    def expires(self, obj: Lock) -> SafeString:
        """``in 4m 10s``, or ``expired 2m 03s ago`` in the warning colour.

        It takes two lines at most, since the list is narrow."""
        now, exact = self.now(), display.utc_text(obj.expires_at)
        if obj.expires_at > now:
            left = display.duration(obj.expires_at - now)
            return format_html('<span title="{}">in {}</span>', exact, left)
        ago = display.duration(now - obj.expires_at)
        return format_html(
            '<span class="chatstate-orphan" title="{}">expired <span class="nowrap">{} ago'
            "</span></span>",
            exact,
            ago,
        )

    @admin.display(description="queue depth")
    def queue_depth(self, obj: Any) -> int:
        return int(obj.queue_depth)

    @admin.display(description="metadata")
    def metadata_json(self, obj: Lock) -> SafeString:
        return display.pretty_json(obj.metadata)

    @admin.display(description="related")
    def related(self, obj: Any) -> SafeString:
        key = {"namespace": obj.namespace}
        targets = [
            ("pendinglockentry", "pending", {**key, "key": obj.key}, obj.queue_depth),
            ("threadstate", "state", {**key, "thread_id": obj.key}, obj.has_state),
            ("subscription", "subscription", {**key, "thread_id": obj.key}, obj.has_subscription),
        ]
        return display.related_links(
            self.admin_site.name,
            [(model, label, params) for model, label, params, exists in targets if exists],
        )

    @admin.action(
        description="Force-release the selected locks (drops what was queued behind them)",
        permissions=["change"],
    )
    def force_release(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Release each selected lock through the adapter, and report what was dropped."""
        using = queryset.db
        rows = queryset.values_list("namespace", "key", "owner", "holders")
        for namespace, key, owner, holders in rows:
            adapter = DatabaseStateAdapter(namespace=namespace, using=using)
            dropped = adapter.force_release_lock(key)
            held = f"held by {owner!r}" if holders is None else f"slots of {holder_names(holders)}"
            where = f"lock {key!r} (namespace {namespace!r}, {held})"
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
        "key_column",
        "owner_column",
        "strategy",
        "message_id",
        "waiting_for",
        "lock_link",
    )
    list_filter = (NamespaceFilter, "strategy")
    id_fields = ("key",)
    owner_fields = ("owner",)
    scan_search = True
    ordering = ["namespace", "key", "id"]
    sortable_by = ("waiting_for",)
    fields = (
        "namespace",
        "key",
        "owner",
        "strategy",
        "enqueued_at",
        "waiting_for",
        "taken_by",
        "metadata_json",
        "lock_link",
    )
    readonly_fields = fields

    @admin.display(description="message id")
    def message_id(self, obj: PendingLockEntry) -> SafeString:
        value = obj.metadata.get("message_id") if isinstance(obj.metadata, dict) else None
        return SafeString("-") if value is None else display.breakable(str(value))

    key_column = display.id_column("key", "key")
    owner_column = display.id_column("owner", "owner", with_namespace=False)
    waiting_for = display.age_column("enqueued_at", "waiting for")

    @admin.display(description="metadata")
    def metadata_json(self, obj: PendingLockEntry) -> SafeString:
        return display.pretty_json(obj.metadata)

    def add_page_facts(self, rows: list[Any], using: str) -> None:
        related.mark_lock_expiry(rows, using)

    @admin.display(description="holder")
    def lock_link(self, obj: Any) -> SafeString:
        """The lock the entry waits behind; "none" or "expired" when no one will hand it on."""
        expires_at = obj.lock_expires_at
        if expires_at is None:
            return format_html('<span class="chatstate-orphan">no lock</span>')
        url = display.changelist_url(
            self.admin_site.name, "lock", namespace=obj.namespace, key=obj.key
        )
        if expires_at <= self.now():
            label = f"lock {display.expiry(expires_at, self.now())}"
            return format_html('<span class="chatstate-orphan">{}</span>', display.link(url, label))
        return display.link(url, "lock")
