"""The end of a committing test (``transactional_db``): its rows deleted, not Django's flush.

Django's ``TransactionTestCase`` empties the test database after each such test with the
``flush`` command: on PostgreSQL one ``TRUNCATE`` of every table (a new file for each table
and index: about 0.15 s idle, far more under load), then ``post_migrate``, which makes every
content type and permission again (some 100 queries, on every database). Here the rows of
every table are deleted in one transaction (a few milliseconds), but those of the content
types and permissions: ``post_migrate`` would make the same ones again. When a test changed
those two tables (their row counts and highest ids differ from what they were before it),
and for the tests that ask for more (``reset_sequences``, ``serialized_rollback``,
``available_apps``), Django's own flush runs, as before.

Either way the next test starts on the same empty tables, and the same content types and
permissions.
"""

from __future__ import annotations

import inspect
from typing import Any

from django.core.management import call_command
from django.core.management.color import no_style
from django.db import DatabaseError, connections, transaction
from django.test import TransactionTestCase

#: The tables whose rows ``post_migrate`` makes: kept as they are.
KEPT = ("django_content_type", "auth_permission")
#: Django's (a class method from Django 5.2 on).
_django_setup = inspect.getattr_static(TransactionTestCase, "_fixture_setup")
#: Per database alias: the kept tables' row counts and highest ids, as a flush leaves them.
_kept_as_flushed: dict[str, tuple[Any, ...]] = {}


def _kept(alias: str) -> tuple[Any, ...]:
    with connections[alias].cursor() as cursor:
        found: list[Any] = []
        for table in KEPT:
            cursor.execute(f"SELECT COUNT(*), MAX(id) FROM {table}")
            found.extend(cursor.fetchone())
        return tuple(found)


def _fixture_setup(case: Any) -> None:
    """Django's, then the kept tables' rows recorded (at the first committing test)."""
    getattr(_django_setup, "__func__", _django_setup)(case)
    for alias in case._databases_names(include_mirrors=False):
        if alias not in _kept_as_flushed:
            _kept_as_flushed[alias] = _kept(alias)


def _delete_rows(alias: str) -> bool:
    """Delete every row but the kept tables'; whether that left what a flush would."""
    connection = connections[alias]
    if _kept(alias) != _kept_as_flushed.get(alias):
        return False
    tables = [
        table
        for table in connection.introspection.django_table_names(
            only_existing=True, include_views=False
        )
        if table not in KEPT
    ]
    if connection.vendor == "postgresql":  # its foreign keys are checked at the commit
        statements = [f"DELETE FROM {connection.ops.quote_name(table)}" for table in tables]
    else:  # DELETE FROM each table (MariaDB/MySQL: its foreign key checks off meanwhile)
        statements = connection.ops.sql_flush(no_style(), tables)
    try:
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    except DatabaseError:
        return False
    return True


def _fixture_teardown(self: TransactionTestCase) -> None:
    plain = not (self.reset_sequences or self.serialized_rollback)
    for alias in self._databases_names(include_mirrors=False):
        if plain and self.available_apps is None and _delete_rows(alias):
            continue
        call_command(  # what Django's TransactionTestCase does
            "flush",
            verbosity=0,
            interactive=False,
            database=alias,
            reset_sequences=False,
            allow_cascade=self.available_apps is not None,
            inhibit_post_migrate=self.available_apps is not None
            or (
                self.serialized_rollback
                and hasattr(connections[alias], "_test_serialized_contents")
            ),
        )
        _kept_as_flushed[alias] = _kept(alias)


def install() -> None:
    """Make every committing test of this process end this way."""
    setup = (
        classmethod(_fixture_setup) if isinstance(_django_setup, classmethod) else _fixture_setup
    )
    TransactionTestCase._fixture_setup = setup  # type: ignore[method-assign,assignment]
    TransactionTestCase._fixture_teardown = _fixture_teardown  # type: ignore[method-assign]
