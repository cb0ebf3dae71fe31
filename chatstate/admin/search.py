"""What one admin search term matches, through an index on every database.

Ids are matched exactly: case, accents and spaces count. Other matches depend on the term.

- A term ending in ``*`` matches the ids that start with the rest. That is an index range
  where text sorts by code point.
- PostgreSQL may have the trigram indexes of migration 0007, with extension ``pg_trgm``.
  There a term with a run of at least three letters or digits matches every id containing
  it. ``C-support`` finds ``slack:C-support:1700000000.1``. The GIN index answers the
  ``LIKE``. A term that starts with a platform of the ids, like ``slack:C-supp``, matches
  the ids that start with it. The ``(namespace, id)`` index serves it. The platform's
  letters are in every id, so the trigram index would read most of itself.
- Elsewhere, a term matches the ids it is a whole part of, for ids shaped
  ``platform:channel:thread``. That covers SQLite, PostgreSQL without ``pg_trgm``, and
  shorter terms. The term may be the leading parts: ``slack:C-support`` finds its threads.
  It may be the parts after the platform: ``C-support`` finds ``slack:C-support`` and its
  threads. Each is an index range per namespace and platform. A loose index scan finds the
  platforms.

The tables of live locks and queued messages are small. They have no trigram index, since
every message cycle writes them. Their keys and owners are matched by substring with a scan,
on every database."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import connections
from django.db.models import Model, Q, TextField, Value
from django.db.models.functions import Cast, StrIndex
from django.db.models.lookups import GreaterThan

from chatstate.adapters.database.vendors import vendor_of
from chatstate.admin.indexed import codepoint_collation, distinct_leading_parts, distinct_values

#: (table, column) → the trigram index migration 0007 creates where ``pg_trgm`` exists.
#: Migrations 0017 and 0023 drop the message ids' and the thread states' indexes, which
#: message cycles wrote; each is used again once rebuilt.
TRIGRAM_INDEXES: dict[tuple[str, str], str] = {
    ("chatstate_subscription", "thread_id"): "chatstate_subscription_trgm",
    ("chatstate_threadstate", "thread_id"): "chatstate_threadstate_trgm",
    ("chatstate_channelstate", "channel_id"): "chatstate_channelstate_trgm",
    ("chatstate_dedupeentry", "message_id"): "chatstate_dedupe_message_trgm",
}
#: A trigram index serves a ``LIKE '%term%'`` only for a term with such a run.
TRIGRAM_RUN = re.compile(r"[^\W_]{3}")
#: The separator of the parts of an id (``platform:channel:thread``).
SEPARATOR = ":"


def valid_trigram_indexes(using: str) -> frozenset[str]:
    """The names of the trigram indexes usable on ``using``; none outside PostgreSQL.

    Each call reads the catalog in one query. So an index built or dropped later is seen at
    once. An index left invalid by an interrupted build does not count."""
    connection = connections[using]
    if not vendor_of(connection).trigram_search:
        return frozenset()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
            " WHERE c.relname = ANY(%s) AND i.indisvalid AND pg_table_is_visible(c.oid)",
            [list(TRIGRAM_INDEXES.values())],
        )
        return frozenset(row[0] for row in cursor.fetchall())


@dataclass
class SearchScope:
    """What the terms of one search share: the database, its namespaces, its indexes."""

    model: type[Model]
    using: str
    namespaces: list[str]
    trigram: frozenset[str]
    codepoint: bool
    _platforms: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        model: type[Model],
        using: str,
        namespaces: list[str] | None = None,
        trigram: frozenset[str] | None = None,
    ) -> SearchScope:
        """The scope of a search of ``model``; namespaces and indexes are read unless given."""
        return cls(
            model=model,
            using=using,
            namespaces=distinct_values(model, using, "namespace")
            if namespaces is None
            else namespaces,
            trigram=valid_trigram_indexes(using) if trigram is None else trigram,
            codepoint=codepoint_collation(using),
        )

    def has_trigram_index(self, column: str) -> bool:
        """Whether ``column`` of the model's table has a usable trigram index."""
        name = TRIGRAM_INDEXES.get((self.model._meta.db_table, column))
        return name is not None and name in self.trigram

    def starts_with_a_platform(self, column: str, term: str) -> bool:
        """Whether ``term`` starts with ``platform:`` for a platform of ``column``'s ids."""
        platform, separator, _ = term.partition(SEPARATOR)
        return bool(separator) and any(
            platform in self.platforms(column, namespace) for namespace in self.namespaces
        )

    def platforms(self, column: str, namespace: str) -> list[str]:
        """The leading parts of ``column``'s ids in ``namespace``, read once per search."""
        key = (column, namespace)
        if key not in self._platforms:
            self._platforms[key] = distinct_leading_parts(
                self.model, self.using, column, namespace, SEPARATOR
            )
        return self._platforms[key]


def is_prefix_term(term: str) -> bool:
    """Whether ``term`` asks for a prefix, like ``slack:C1:*``."""
    return term.endswith("*") and len(term) > 1


def prefix_condition(column: str, prefix: str, codepoint: bool) -> Q:
    """``column`` starts with ``prefix``: an index range where text sorts by code point.

    There the range from ``prefix`` up to ``prefix`` with its last character's successor
    holds exactly the ids starting with ``prefix``. It is case-sensitive, on SQLite too. So
    no ``LIKE`` goes beside it; PostgreSQL would AND in a scan of the trigram index for it.
    Elsewhere, ``startswith``."""
    if not codepoint or not prefix or ord(prefix[-1]) >= 0x10FFFF:
        return Q(**{f"{column}__startswith": prefix})
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return Q(**{f"{column}__gte": prefix, f"{column}__lt": upper})


def whole_part_condition(column: str, part: str, codepoint: bool) -> Q:
    """``column`` is ``part`` or starts with ``part:``; ``part`` is its leading parts."""
    return Q(**{column: part}) | prefix_condition(column, part + SEPARATOR, codepoint)


def id_condition(column: str, term: str, scope: SearchScope) -> Q:
    """The rows whose ``column`` ``term`` matches; ``column`` is second in a ``(namespace,
    column)`` index.

    Every condition names the namespaces. So PostgreSQL and SQLite probe the composite index
    once per namespace. No namespace at all matches nothing."""
    if not scope.namespaces:
        return Q(pk__in=[])
    in_scope = Q(namespace__in=scope.namespaces)
    if is_prefix_term(term):
        return in_scope & prefix_condition(column, term[:-1], scope.codepoint)
    if scope.has_trigram_index(column) and TRIGRAM_RUN.search(term):
        if scope.codepoint and scope.starts_with_a_platform(column, term):
            # Every id holds its platform's letters: an index range serves this one.
            return in_scope & prefix_condition(column, term, codepoint=True)
        return in_scope & Q(**{f"{column}__contains": term})
    if not scope.codepoint:
        return in_scope & Q(**{column: term})
    condition = in_scope & whole_part_condition(column, term, codepoint=True)
    for namespace in scope.namespaces:
        platforms = scope.platforms(column, namespace)
        for platform in platforms:
            condition |= Q(namespace=namespace) & whole_part_condition(
                column, f"{platform}{SEPARATOR}{term}", codepoint=True
            )
    return condition


def scan_condition(columns: Sequence[str], term: str, scope: SearchScope) -> Q:
    """Rows whose ``columns`` contain ``term``, or start with it for ``prefix*``; a scan.

    It is case-sensitive on every database: it uses ``instr`` or ``strpos``, not SQLite's
    ``LIKE``. It serves the small tables of live locks and queued messages."""
    if not scope.namespaces:
        return Q(pk__in=[])
    matches = Q(pk__in=[])
    for column in columns:
        if is_prefix_term(term):
            matches |= prefix_condition(column, term[:-1], scope.codepoint)
        else:
            matches |= Q(GreaterThan(StrIndex(column, Value(term)), 0))
    return Q(namespace__in=scope.namespaces) & matches


def holders_condition(term: str, scope: SearchScope) -> Q:
    """Slot rows with a holder whose owner contains ``term``, or starts with it for
    ``prefix*``; a scan of their ``holders`` text (JSON keyed by owner)."""
    needle = '"' + term[:-1] if is_prefix_term(term) else term
    found = GreaterThan(StrIndex(Cast("holders", TextField()), Value(needle)), 0)
    return Q(namespace__in=scope.namespaces) & Q(found)


def help_text(kind: str, substring: bool) -> str:
    """The search box's hint for ``kind``, and the search offered.

    ``kind`` is "id", "message", "lock" or "list"."""
    if kind == "list":
        return (
            "An exact list key; a thread id or platform:channel (finds their histories); "
            "or a prefix ending in * (e.g. user:*, slack:C1:*)."
        )
    if kind == "lock":
        return "Any part of a key or an owner (e.g. C-support, worker-7), or a prefix ending in *."
    if kind == "message":
        if substring:
            return (
                "Any part of a message id (3+ letters or digits), adapter:message_id, "
                "or a prefix ending in * (e.g. m12*)."
            )
        return "An exact message id, adapter:message_id, or a prefix ending in * (e.g. m12*)."
    if substring:
        return (
            "Any part of an id (3+ letters or digits, e.g. C-support), an exact id, "
            "or a prefix ending in * (e.g. slack:C1:*)."
        )
    return (
        "An exact id; a part of a platform:channel:thread id (e.g. the channel C-support, "
        "or slack:C-support); or a prefix ending in * (e.g. slack:C1:*)."
    )
