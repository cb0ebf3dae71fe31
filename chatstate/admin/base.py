"""``ChatStateAdmin``: the read-only, index-backed ModelAdmin every chatstate page builds on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, cast

from django.contrib import admin
from django.db import connections
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext

from chatstate.adapters.database.vendors import vendor_of
from chatstate.admin import search
from chatstate.admin.indexed import EstimatedCountPaginator, distinct_values
from chatstate.admin.search import SearchScope

T = TypeVar("T")

#: On SQLite, a search matching at most this many rows lists them by id (see below).
SQLITE_ID_LIST = 1000


def per_request(request: HttpRequest, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
    """``compute()``, once per request and ``key``; a page asks several times."""
    cache: dict[tuple[Any, ...], Any] = request.__dict__.setdefault("_chatstate_cache", {})
    if key not in cache:
        cache[key] = compute()
    return cast("T", cache[key])


def namespaces_of(request: HttpRequest, model: type[Model], using: str) -> list[str]:
    """The namespaces ``model``'s table holds, by a loose index scan once per request."""
    return per_request(
        request, ("namespaces", model, using), lambda: distinct_values(model, using, "namespace")
    )


def trigram_indexes(request: HttpRequest, using: str) -> frozenset[str]:
    """The usable trigram indexes on ``using``, by a catalog query once per request."""
    return per_request(request, ("trigram", using), lambda: search.valid_trigram_indexes(using))


class NamespaceFilter(admin.SimpleListFilter):
    """Filter by namespace; the choices come from a loose index scan, not a table scan."""

    title = "namespace"
    parameter_name = "namespace"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        model = model_admin.model
        using = model_admin.get_queryset(request).db
        return [(ns, ns) for ns in namespaces_of(request, model, using)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(namespace=value) if value is not None else queryset


class ChatStateAdmin(admin.ModelAdmin):
    """Inspection pages that stay fast at millions of rows and never edit a row directly.

    - Rows are never added or edited here. State changes go through the adapter's
      operations, offered as actions. Change pages are read-only and show JSON
      pretty-printed.
    - Searches match ``id_fields`` through the ``(namespace, id)`` indexes. Trigram indexes
      serve them where PostgreSQL has them; see :mod:`chatstate.admin.search`. Admins of
      small tables (``scan_search``) match ``id_fields`` and ``owner_fields`` by substring.
    - Lists have no namespace column. Where a page shows rows of several namespaces, each id
      carries its namespace beneath it.
    - The wording is read-only: "View", "Select … to view". The change permission only
      allows the actions.
    - Pages count at most ``EstimatedCountPaginator.exact_limit`` rows. They offset at most
      ``max_pages`` pages. Columns sort only where an index serves the order.
    """

    #: Fields second in a ``(namespace, field)`` index, which a search matches.
    id_fields: tuple[str, ...] = ()
    #: Further fields a search matches (owners; their tables hold live locks only).
    owner_fields: tuple[str, ...] = ()
    #: Whether searches scan the table for substrings (tables of live locks and queues only).
    scan_search = False
    #: Which hint the search box shows (see :func:`chatstate.admin.search.help_text`).
    search_kind = "id"

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would scan the tables
    list_per_page = 100
    list_max_show_all = 100
    ordering = ["-pk"]
    sortable_by: ClassVar[list[str] | tuple[str, ...] | None] = ()

    class Media:
        css = {"all": ["chatstate/admin.css"]}

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return [*self.id_fields, *self.owner_fields]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        """The change permission allows the actions; no single row is ever edited by hand."""
        if obj is not None:
            return False
        return super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def get_model_perms(self, request: HttpRequest) -> dict[str, bool]:
        """No row is changed by hand: the app index offers "View", never "Change"."""
        return {**super().get_model_perms(request), "change": False}

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        title = gettext("Select %s to view") % self.opts.verbose_name
        return super().changelist_view(request, {"title": title, **(extra_context or {})})

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        """The changelist, with a search hint and page facts.

        Its search hint says what this database's search matches. Its page's rows carry what
        they show from other tables; see :meth:`add_page_facts`."""
        changelist = super().get_changelist_instance(request)
        using = changelist.queryset.db
        changelist.search_help_text = search.help_text(
            "lock" if self.scan_search else self.search_kind,
            self.offers_substring(trigram_indexes(request, using)),
        )
        rows = list(changelist.result_list)
        several = len({row.namespace for row in rows}) > 1
        for row in rows:
            row.show_namespace = several
        self.add_page_facts(rows, using)
        changelist.result_list = rows
        return changelist

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            self.add_page_facts([obj], obj._state.db or "default")
        return obj

    def add_page_facts(self, rows: list[Any], using: str) -> None:
        """Set on the rows shown what their columns read from other tables.

        It costs one query per table for the whole page; see :mod:`chatstate.admin.related`.
        The default sets nothing."""

    def offers_substring(self, indexes: frozenset[str]) -> bool:
        """Whether a search here matches any part of an id; else exact ids and parts."""
        if self.scan_search:
            return True
        table = self.model._meta.db_table
        return all(
            search.TRIGRAM_INDEXES.get((table, column)) in indexes for column in self.id_fields
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Rows matching every whitespace-separated term, each through an index."""
        terms = [
            unescape_string_literal(bit) if bit[:1] in "\"'" and bit[0] == bit[-1] else bit
            for bit in smart_split(search_term)
        ]
        if not terms:
            return queryset, False
        using = queryset.db
        scope = SearchScope.of(
            self.model,
            using,
            namespaces=namespaces_of(request, self.model, using),
            trigram=trigram_indexes(request, using),
        )
        searched = queryset
        for term in terms:
            searched = searched.filter(self.term_filter(term, scope))
        if vendor_of(connections[queryset.db]).needs_id_lists and not self.scan_search:
            # SQLite's planner would read the table in id order, testing each row, rather
            # than sort what the index ranges find: with few matches, hand it their ids.
            ids = list(searched.order_by().values_list("pk", flat=True)[: SQLITE_ID_LIST + 1])
            if len(ids) <= SQLITE_ID_LIST:
                return queryset.filter(pk__in=ids), False
        return searched, False

    def term_filter(self, term: str, scope: SearchScope) -> Q:
        """The condition one search term adds; see :mod:`chatstate.admin.search`."""
        if self.scan_search:
            return search.scan_condition([*self.id_fields, *self.owner_fields], term, scope)
        condition = Q(pk__in=[])
        for column in self.id_fields:
            condition |= search.id_condition(column, term, scope)
        return condition

    def now(self) -> Any:
        """The time ages are measured against."""
        return timezone.now()
