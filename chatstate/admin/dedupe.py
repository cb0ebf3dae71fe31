"""Admin page for the dedupe window, and the ``delete_entries`` action that clears entries."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_permission_codename
from django.db import transaction
from django.db.models import Max, Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from chatstate.admin import display, search
from chatstate.admin.base import ChatStateAdmin, NamespaceFilter
from chatstate.admin.indexed import EstimatedCountPaginator, distinct_values
from chatstate.admin.search import SearchScope
from chatstate.models import DedupeEntry, DedupeWindow

#: Deletions of at most this many entries are recorded one by one in the admin log.
LOGGED_DELETIONS = 100


class DedupeEntryAdmin(ChatStateAdmin):
    """The handled messages of each namespace's window, newest first.

    Deleting entries clears them from the window, so a redelivery of those messages is
    handled again. Each namespace's window count, ``DedupeWindow.head``, goes down by what
    was deleted from it. That happens in the same transaction, so trimming stays exact."""

    list_display = ("message_id_column", "adapter", "seq", "handled_ago")
    list_filter = (NamespaceFilter,)
    id_fields = ("message_id",)
    search_kind = "message"
    actions = ("delete_entries",)
    fields = ("namespace", "adapter", "message_id", "seq", "created_at", "handled_ago")
    readonly_fields = fields

    message_id_column = display.id_column("message_id", "message id")
    handled_ago = display.age_column("created_at", "handled", " ago")

    def has_delete_entries_permission(self, request: HttpRequest) -> bool:
        """Django's delete permission on dedupe entries allows ``delete_entries``.

        ``has_delete_permission`` stays False. So Django's ``delete_selected``, which loads
        every row, is not offered. Neither is a change page's "Delete". Both would leave the
        window count wrong."""
        opts = self.opts
        codename = get_permission_codename("delete", opts)
        return request.user.has_perm(f"{opts.app_label}.{codename}")

    def term_filter(self, term: str, scope: SearchScope) -> Q:
        """A message id through the ``(namespace, adapter, message_id)`` index.

        Every ``(namespace, adapter)`` pair is named, so each is one index probe. A term
        ``adapter:message_id`` also matches that exact key. With a trigram index, a term
        also matches the message ids containing it."""
        if not scope.namespaces:
            return Q(pk__in=[])
        using = scope.using
        if search.is_prefix_term(term):
            match = search.prefix_condition("message_id", term[:-1], scope.codepoint)
        else:
            match = Q(message_id=term)
        condition = Q(pk__in=[])
        for namespace in scope.namespaces:
            for adapter in distinct_values(DedupeEntry, using, "adapter", {"namespace": namespace}):
                condition |= Q(namespace=namespace, adapter=adapter) & match
        adapter, sep, message_id = term.partition(":")
        if sep and adapter and message_id:
            condition |= Q(namespace__in=scope.namespaces, adapter=adapter) & (
                search.prefix_condition("message_id", message_id[:-1], scope.codepoint)
                if search.is_prefix_term(message_id)
                else Q(message_id=message_id)
            )
        if (
            not search.is_prefix_term(term)
            and scope.has_trigram_index("message_id")
            and search.TRIGRAM_RUN.search(term)
        ):
            condition |= Q(namespace__in=scope.namespaces, message_id__contains=term)
        return condition

    @admin.action(
        description="Delete the selected dedupe entries (their messages count as new again)",
        permissions=["delete_entries"],
    )
    def delete_entries(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        """Delete the selected entries in one statement, after a confirmation page."""
        sample = list(queryset.order_by()[:20])
        if not request.POST.get("post"):
            context = {
                **self.admin_site.each_context(request),
                "title": "Delete dedupe entries?",
                "chatstate_ol_breadcrumbs": display.OL_BREADCRUMBS,
                "opts": self.opts,
                "sample": sample,
                "count": EstimatedCountPaginator(queryset, self.list_per_page).count_label,
                "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across", "0"),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "media": self.media,
            }
            return TemplateResponse(
                request, "admin/chatstate/dedupeentry/delete_confirmation.html", context
            )
        if queryset.order_by()[: LOGGED_DELETIONS + 1].count() <= LOGGED_DELETIONS:
            self.log_deletions(request, queryset)
        deleted = delete_entries(queryset.order_by())
        self.message_user(
            request,
            f"Deleted {deleted} dedupe entr{'y' if deleted == 1 else 'ies'}; "
            "a redelivery of those messages will be handled again.",
            messages.SUCCESS,
        )
        return None


def delete_entries(queryset: QuerySet[Any]) -> int:
    """Delete the entries of ``queryset``, keeping each namespace's window count exact."""
    using = queryset.db
    with transaction.atomic(using=using):
        windows = DedupeWindow.objects.using(using).select_for_update().order_by("namespace")
        deleted = 0
        for window in windows:
            mine = queryset.filter(namespace=window.namespace)
            newest = mine.aggregate(newest=Max("seq"))["newest"]
            n = mine.delete()[0] if newest is not None else 0
            window.withdraw(n, newest)
            deleted += n
        rest, _ = queryset.delete()  # namespaces without a window row: nothing to count
    return deleted + rest
