"""Index-backed building blocks that keep the admin fast on tables of millions of rows.

Every chatstate table has an index whose leading column is ``namespace``. These helpers only
ever read through such indexes.

- :func:`distinct_values` lists the distinct values of an indexed column with a loose index
  scan. That is one index probe per distinct value, never a scan of the table.
- :func:`distinct_leading_parts` lists the platforms of ``platform:channel:thread`` ids the
  same way.
- :class:`EstimatedCountPaginator` counts exactly only up to a bound. Beyond it, it takes
  PostgreSQL's planner estimate. It caps how deep pages go. So no page runs ``COUNT(*)``
  over the table or an ``OFFSET`` of millions.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, cast

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Model, QuerySet

from chatstate.adapters.database.vendors import vendor_of

#: At most this many distinct values are listed (filters, namespace-qualified searches).
MAX_DISTINCT = 200


def distinct_values(
    model: type[Model], using: str, column: str, where: dict[str, str] | None = None
) -> list[str]:
    """The distinct non-null values of ``column``, sorted, at most ``MAX_DISTINCT``.

    ``where`` holds equality conditions on the columns before ``column`` in an index. For
    ``adapter``, that is ``{"namespace": "ns"}``. The recursive query then reads one index
    entry per distinct value, a "loose index scan". It works on PostgreSQL and SQLite alike."""
    connection = connections[using]
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    col = qn(column)
    conditions = "".join(f" AND {qn(name)} = %s" for name in (where or {}))
    params = list((where or {}).values())
    sql = (
        f"WITH RECURSIVE v(x) AS ("
        f" SELECT MIN({col}) FROM {table} WHERE 1 = 1{conditions}"
        f" UNION ALL"
        f" SELECT (SELECT MIN({col}) FROM {table} WHERE {col} > v.x{conditions})"
        f" FROM v WHERE v.x IS NOT NULL"
        f") SELECT x FROM v WHERE x IS NOT NULL LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *params, MAX_DISTINCT])
        return [row[0] for row in cursor.fetchall()]


def distinct_leading_parts(
    model: type[Model], using: str, column: str, namespace: str, separator: str = ":"
) -> list[str]:
    """The distinct first parts of ``column``'s values in ``namespace``, before ``separator``.

    For ids shaped ``platform:channel:thread`` these are the platforms. As in
    :func:`distinct_values`, each part found costs one index probe, up to ``MAX_DISTINCT``.
    The next probe starts past every id of the part just found. That needs text sorted by
    code point; see :func:`codepoint_collation`. Elsewhere the answer is ``[]``."""
    connection = connections[using]
    if not codepoint_collation(using):
        return []
    qn = connection.ops.quote_name
    table, col = qn(model._meta.db_table), qn(column)
    # The next probe starts at the first id past the part just found: "part;" (";" follows
    # ":"), or for an id without a separator, the id followed by U+0001 (the next string up,
    # ids holding no NUL). One bound, so the probe is an index range.
    past = chr(ord(separator) + 1)
    bound = vendor_of(connection).next_prefix_sql()
    sql = (
        f"WITH RECURSIVE v(x) AS ("
        f" SELECT MIN({col}) FROM {table} WHERE namespace = %s"
        f" UNION ALL"
        f" SELECT (SELECT MIN({col}) FROM {table} WHERE namespace = %s AND {col} >= {bound})"
        f" FROM v WHERE v.x IS NOT NULL"
        f") SELECT x FROM v WHERE x IS NOT NULL LIMIT %s"
    )
    params: list[str | int] = [namespace, namespace, separator, separator, past, MAX_DISTINCT]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        values = [row[0] for row in cursor.fetchall()]
    return [value.split(separator, 1)[0] for value in values if separator in value]


def codepoint_collation(using: str) -> bool:
    """Whether text sorts by code point on ``using``, so a prefix is an index range."""
    connection = connections[using]
    return vendor_of(connection).sorts_by_code_point(connection)


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts a whole table and never offsets past ``max_pages``.

    ``count`` is exact up to ``exact_limit`` rows, by a ``LIMIT``-bounded count. Beyond
    that, on PostgreSQL it is the planner's estimate for the filtered query, and
    ``count_qualifier`` is "about". On other databases it is the bound itself, and
    ``count_qualifier`` is "more than". Pages stop at ``max_pages``. Deeper rows are reached
    by searching or filtering. So a page never costs an ``OFFSET`` of millions of rows."""

    exact_limit = 10_000
    max_pages = 1_000

    #: "" when ``count`` is exact, else "about" (an estimate) or "more than" (a bound).
    count_qualifier = ""

    @cached_property
    def count(self) -> int:
        queryset = cast("QuerySet[Any]", self.object_list)
        bounded = queryset.order_by().values("pk")[: self.exact_limit + 1].count()
        if bounded <= self.exact_limit:
            return int(bounded)
        estimate = planner_estimate(queryset)
        if estimate > self.exact_limit:
            self.count_qualifier = "about"
            return estimate
        self.count_qualifier = "more than"
        return self.exact_limit + 1

    @cached_property
    def num_pages(self) -> int:
        return min(super().num_pages, self.max_pages)

    @property
    def capped(self) -> bool:
        """Whether rows exist beyond the last page offered."""
        return self.num_pages * self.per_page < self.count

    @property
    def count_label(self) -> str:
        """The row count as the operator should read it: "12", "about 1000000", …"""
        if self.count_qualifier == "more than":
            return f"more than {self.exact_limit}"
        return f"{self.count_qualifier} {self.count}".strip()


def planner_estimate(queryset: QuerySet[Any]) -> int:
    """PostgreSQL's estimate of how many rows ``queryset`` returns; 0 on other databases."""
    if not vendor_of(connections[queryset.db]).estimates_rows:
        return 0
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])
