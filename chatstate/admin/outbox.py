"""Admin page for the outbox: replies waiting for delivery, and dead ones.

Its ``requeue`` and ``discard`` actions go through the adapter."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_permission_codename
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.admin import display
from chatstate.admin.base import ChatStateAdmin, NamespaceFilter
from chatstate.admin.indexed import EstimatedCountPaginator
from chatstate.models import OutboxMessage


class OutboxStatusFilter(admin.SimpleListFilter):
    """Waiting entries, to be sent or being sent; or dead ones, for an operator to handle."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("waiting", "waiting"), ("dead", "dead")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("waiting", "dead"):
            return queryset.filter(dead=self.value() == "dead")
        return queryset


def by_namespace(queryset: QuerySet[Any]) -> dict[str, list[str]]:
    """The ids of the selected entries, by namespace."""
    ids: dict[str, list[str]] = defaultdict(list)
    for namespace, pk in queryset.order_by().values_list("namespace", "pk"):
        ids[namespace].append(str(pk))
    return ids


def plural(count: int, word: str = "entry", words: str = "entries") -> str:
    return f"{count} {word if count == 1 else words}"


class OutboxMessageAdmin(ChatStateAdmin):
    """Replies committed with their messages and not yet delivered, oldest first.

    That is the order of each thread's delivery."""

    list_display = (
        "thread_id_column",
        "key_column",
        "attempts",
        "due",
        "status",
        "payload_preview",
    )
    list_filter = (NamespaceFilter, OutboxStatusFilter)
    id_fields = ("thread_id", "key")
    ordering = ["pk"]
    actions = ("requeue", "discard")
    fields = (
        "namespace",
        "thread_id",
        "key",
        "status",
        "attempts",
        "created_at",
        "waiting_for",
        "due_at",
        "due",
        "lease_owner",
        "lease_until",
        "payload_json",
    )
    readonly_fields = fields

    thread_id_column = display.id_column("thread_id", "thread id")
    key_column = display.id_column("key", "key", with_namespace=False)
    waiting_for = display.age_column("created_at", "waiting for")

    @admin.display(description="due")
    def due(self, obj: OutboxMessage) -> SafeString:
        """When the entry is or was due.

        It reads ``in 30s`` while the entry waits for a retry, and ``now`` once due. A dead
        entry shows ``-``; it is never retried until requeued."""
        if obj.dead:
            return SafeString("-")
        now = self.now()
        if obj.due_at > now:
            return format_html(
                '<span title="{}">in {}</span>',
                display.utc_text(obj.due_at),
                display.duration(obj.due_at - now),
            )
        return format_html('<span title="{}">now</span>', display.utc_text(obj.due_at))

    @admin.display(description="status")
    def status(self, obj: OutboxMessage) -> SafeString:
        """``dead`` in the warning colour, ``sending`` while a dispatcher's lease runs, or
        ``waiting``."""
        if obj.dead:
            return SafeString('<span class="chatstate-orphan">dead</span>')
        if obj.lease_until is not None and obj.lease_until > self.now():
            return format_html('<span title="leased by {}">sending</span>', obj.lease_owner)
        return SafeString("waiting")

    @admin.display(description="payload")
    def payload_preview(self, obj: OutboxMessage) -> SafeString:
        return display.state_preview(obj.payload, 80)

    @admin.display(description="payload")
    def payload_json(self, obj: OutboxMessage) -> SafeString:
        return display.pretty_json(obj.payload)

    @admin.action(
        description="Requeue the selected dead entries (due now, attempts reset)",
        permissions=["change"],
    )
    def requeue(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Make each selected dead entry due now, through the adapter."""
        using, requeued, selected = queryset.db, 0, 0
        for namespace, ids in by_namespace(queryset).items():
            adapter = DatabaseStateAdapter(namespace=namespace, using=using)
            requeued += adapter.requeue_outbox(ids)
            selected += len(ids)
        skipped = selected - requeued
        note = f"; {plural(skipped)} not dead left as {'it was' if skipped == 1 else 'they were'}"
        self.message_user(
            request,
            f"Requeued {plural(requeued)}{note if skipped else ''}.",
            messages.SUCCESS if requeued else messages.WARNING,
        )

    def has_discard_permission(self, request: HttpRequest) -> bool:
        """Django's delete permission on outbox entries allows ``discard``.

        Discarded rows go, and their replies are never sent. ``has_delete_permission`` stays
        False, since Django's ``delete_selected`` would bypass the adapter."""
        codename = get_permission_codename("delete", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    @admin.action(
        description="Discard the selected entries (they are never sent)",
        permissions=["discard"],
    )
    def discard(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        """Remove the selected entries through the adapter, after a confirmation page."""
        if not request.POST.get("post"):
            context = {
                **self.admin_site.each_context(request),
                "title": "Discard outbox entries?",
                "opts": self.opts,
                "sample": list(queryset.order_by("pk")[:20]),
                "count": EstimatedCountPaginator(queryset, self.list_per_page).count_label,
                "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across", "0"),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "media": self.media,
            }
            return TemplateResponse(
                request, "admin/chatstate/outboxmessage/discard_confirmation.html", context
            )
        discarded = 0
        for namespace, ids in by_namespace(queryset).items():
            adapter = DatabaseStateAdapter(namespace=namespace, using=queryset.db)
            discarded += adapter.discard_outbox(ids)
        self.message_user(request, f"Discarded {plural(discarded)}: never sent.", messages.SUCCESS)
        return None
