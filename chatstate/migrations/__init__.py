"""chatstate's migrations, and the operations they share.

The PostgreSQL functions of the fast path are installed from frozen copies kept beside the
migrations (``sql/<migration>.sql``): a migration installs exactly the text it shipped with,
whatever the code of a later release says, and ``manage.py sqlmigrate chatstate <name>``
prints it for a DBA who applies migrations by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import migrations

SQL_DIR = Path(__file__).with_name("sql")


def frozen_sql(name: str) -> str:
    """The text of ``sql/<name>``: a frozen copy of what a migration installs."""
    return (SQL_DIR / name).read_text(encoding="utf-8")


class RunPostgreSQLFile(migrations.RunSQL):
    """``RunSQL`` of frozen ``.sql`` files, on PostgreSQL only (a no-op on other databases).

    Each file is sent as one statement batch (its ``$$`` function bodies are not split);
    several ``backward`` files run in turn.
    """

    def __init__(self, forward: str, *backward: str) -> None:
        self.forward_file, self.backward_files = forward, backward
        super().__init__(
            sql=[(frozen_sql(forward), None)],
            reverse_sql=[(frozen_sql(name), None) for name in backward],
            elidable=False,
        )

    def deconstruct(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__name__}",
            (self.forward_file, *self.backward_files),
            {},
        )

    def database_forwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, *args)

    def database_backwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, *args)

    def describe(self) -> str:
        return f"Install the PostgreSQL functions of {self.forward_file}"


def extension_schema(connection: Any) -> str | None:
    """The schema the ``pg_trgm`` extension lives in, or None where it is not installed."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_extension e"
            " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
        )
        row = cursor.fetchone()
    return None if row is None else str(row[0])


class DropTrigramIndex(migrations.operations.base.Operation):
    """Drop a trigram index of migration 0007, on PostgreSQL only (a no-op elsewhere).

    Reversed, the index is built again where the ``pg_trgm`` extension exists."""

    reduces_to_sql = True
    reversible = True

    def __init__(self, table: str, column: str, name: str) -> None:
        self.table, self.column, self.name = table, column, name

    def deconstruct(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__name__}",
            (self.table, self.column, self.name),
            {},
        )

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def database_forwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {self.name}")

    def database_backwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        schema = extension_schema(schema_editor.connection)
        if schema is not None:
            opclass = f"{schema_editor.quote_name(schema)}.gin_trgm_ops"
            schema_editor.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {self.name}"
                f" ON {self.table} USING gin ({self.column} {opclass})"
            )

    def describe(self) -> str:
        return f"Drop the trigram index of {self.table}.{self.column} (PostgreSQL only)"
