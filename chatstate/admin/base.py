"""``ChatStateAdmin``: the read-only, index-backed ModelAdmin every chatstate page builds on."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import smart_split, unescape_string_literal

from chatstate.admin.indexed import EstimatedCountPaginator, distinct_values, exact_id_filter


class NamespaceFilter(admin.SimpleListFilter):
    """Filter by namespace; the choices come from a loose index scan, not a table scan."""

    title = "namespace"
    parameter_name = "namespace"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        model = model_admin.model
        using = model_admin.get_queryset(request).db
        return [(ns, ns) for ns in distinct_values(model, using, "namespace")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(namespace=value) if value is not None else queryset


class ChatStateAdmin(admin.ModelAdmin):
    """Inspection pages that stay fast at millions of rows and never edit a row directly.

    - rows are never added or edited here (state changes go through the adapter's operations,
      offered as actions); change pages are read-only and show JSON pretty-printed;
    - searches match ``id_fields`` (and ``owner_fields``) exactly, or by prefix for a term
      ending in ``*``, through the ``(namespace, id)`` indexes;
    - pages count at most ``EstimatedCountPaginator.exact_limit`` rows and offset at most
      ``max_pages`` pages; columns sort only where an index serves the order.
    """

    #: Fields second in a ``(namespace, field)`` index: searched by exact id or prefix.
    id_fields: tuple[str, ...] = ()
    #: Further fields matched exactly by a search (owners; their tables hold live locks only).
    owner_fields: tuple[str, ...] = ()

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    if hasattr(admin, "ShowFacets"):  # Django >= 5.0: facet counts would scan the tables
        show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    list_max_show_all = 100
    ordering = ["-pk"]
    sortable_by: ClassVar[list[str] | tuple[str, ...] | None] = ()
    search_help_text = "An exact id, or a prefix ending in * (e.g. slack:C1:*)."

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
        namespaces = distinct_values(self.model, queryset.db, "namespace")
        for term in terms:
            queryset = queryset.filter(self.term_filter(queryset, term, namespaces))
        return queryset, False

    def term_filter(self, queryset: QuerySet[Any], term: str, namespaces: list[str]) -> Q:
        """The condition one search term adds: an id match, or an owner's exact match."""
        condition = exact_id_filter(queryset, self.id_fields, term, namespaces)
        for field in self.owner_fields:
            condition |= Q(namespace__in=namespaces, **{field: term})
        return condition

    def now(self) -> Any:
        """The time ages are measured against."""
        return timezone.now()
