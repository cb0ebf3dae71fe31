"""Admin page for capped lists, thread histories among them: length, newest item, expiry."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import JSONField, OuterRef, Q, Subquery
from django.utils.html import format_html
from django.utils.safestring import SafeString

from chatstate.admin import display, related, search
from chatstate.admin.base import ChatStateAdmin, NamespaceFilter
from chatstate.admin.search import SearchScope
from chatstate.models import ListHead, ListItem, ThreadState
from chatstate.validation import HISTORY_PREFIX

#: A list's page shows this many of its newest items.
ITEMS_SHOWN = 50


def mark_list_facts(rows: list[Any], using: str) -> None:
    """Set ``length`` and ``newest`` on each list row, with one query for the page.

    ``newest`` is its newest item, None when empty. Each row costs two index probes, at its
    oldest and newest position. A list's items are one run of positions, from its
    ``first_seq`` (rows below it were trimmed, not yet deleted)."""
    if not rows:
        return
    items = ListItem.objects.using(using).filter(
        namespace=OuterRef("namespace"), key=OuterRef("key")
    )
    facts = {
        pk: (oldest, newest)
        for pk, oldest, newest in ListHead.objects.using(using)
        .filter(pk__in=[row.pk for row in rows])
        .annotate(
            oldest=Subquery(
                items.filter(seq__gte=OuterRef("first_seq")).order_by("seq").values("seq")[:1]
            ),
            newest=Subquery(
                items.filter(seq=OuterRef("last_seq")).values("value")[:1],
                output_field=JSONField(),
            ),
        )
        .values_list("pk", "oldest", "newest")
    }
    for row in rows:
        oldest, newest = facts.get(row.pk, (None, None))
        row.length = 0 if oldest is None else row.last_seq - oldest + 1
        row.newest = newest
        history = row.key.startswith(HISTORY_PREFIX)
        row.thread_id = row.key[len(HISTORY_PREFIX) :] if history else None


class ListHeadAdmin(ChatStateAdmin):
    """Each capped list, newest first: how long, its newest item, when it expires.

    A thread's history, ``history:<thread id>``, links to the thread's state."""

    list_display = ("key_column", "length", "newest_item", "expiry", "related")
    list_filter = (NamespaceFilter,)
    id_fields = ("key",)
    search_kind = "list"
    fields = (
        "namespace",
        "key",
        "length",
        "expiry",
        "updated_at",
        "updated_ago",
        "related",
        "items_json",
    )
    readonly_fields = fields

    key_column = display.id_column("key", "key")
    updated_ago = display.age_column("updated_at", "updated", " ago")

    def add_page_facts(self, rows: list[Any], using: str) -> None:
        mark_list_facts(rows, using)
        threads = [row for row in rows if row.thread_id is not None]
        related.mark_existing(threads, using, ThreadState, "thread_id", "thread_id", "has_state")

    def term_filter(self, term: str, scope: SearchScope) -> Q:
        """A list key as an id: exact, a prefix, or its parts.

        A thread id or a ``platform:channel`` also finds the history lists of those threads."""
        condition = super().term_filter(term, scope)
        if scope.namespaces and not term.startswith(HISTORY_PREFIX):
            history = HISTORY_PREFIX + term
            if search.is_prefix_term(term):
                match = search.prefix_condition("key", history[:-1], scope.codepoint)
            else:
                match = search.whole_part_condition("key", history, scope.codepoint)
            condition |= Q(namespace__in=scope.namespaces) & match
        return condition

    @admin.display(description="length")
    def length(self, obj: Any) -> int:
        return int(obj.length)

    @admin.display(description="newest item")
    def newest_item(self, obj: Any) -> SafeString:
        if obj.newest is None and not obj.length:
            return SafeString("-")
        return display.state_preview(obj.newest, 80)

    @admin.display(description="expires", ordering="expires_at")
    def expiry(self, obj: ListHead) -> SafeString:
        """``never``, ``in 4m 10s``, or ``expired 2m 03s ago`` in the warning colour.

        An expired list reads as empty, and ``prune`` deletes it."""
        if obj.expires_at is None:
            return SafeString("never")
        text = display.expiry(obj.expires_at, self.now())
        exact = display.utc_text(obj.expires_at)
        if obj.expires_at > self.now():
            return format_html('<span title="{}">{}</span>', exact, text)
        return format_html('<span class="chatstate-orphan" title="{}">{}</span>', exact, text)

    @admin.display(description="related")
    def related(self, obj: Any) -> SafeString:
        if not getattr(obj, "has_state", False):
            return SafeString("-")
        params = {"namespace": obj.namespace, "thread_id": obj.thread_id}
        return display.related_links(self.admin_site.name, [("threadstate", "state", params)])

    @admin.display(description="items")
    def items_json(self, obj: ListHead) -> SafeString:
        """The newest ``ITEMS_SHOWN`` items, oldest first, as pretty JSON."""
        rows = (
            ListItem.objects.using(obj._state.db or "default")
            .filter(namespace=obj.namespace, key=obj.key, seq__gte=obj.first_seq)
            .order_by("-seq")
            .values_list("value", flat=True)[:ITEMS_SHOWN]
        )
        values = list(rows)[::-1]
        older = int(getattr(obj, "length", len(values))) - len(values)
        note = f"{older} older item{'' if older == 1 else 's'} not shown" if older > 0 else ""
        return format_html(
            "{}{}", display.pretty_json(values), format_html("<p>{}</p>", note) if note else ""
        )
