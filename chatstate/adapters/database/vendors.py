"""What each database vendor does differently, as data and small methods.

Code asks its connection's :class:`Vendor` a question; it never tests a vendor's name. This
is the pattern of Django's ``connection.features`` and ``connection.ops``. A vendor missing
here gets the plain defaults of :class:`Vendor`: ORM statements, no retries, sorts in Python.
"""

from __future__ import annotations

from typing import Any, ClassVar

# PostgreSQL SQLSTATEs of a lost connection. Class 08 is a connection exception. 57P01 is an
# admin shutdown, such as pg_terminate_backend. 57P02 is a crash. 57P03 is a server starting.
_PG_GONE = ("08", "57P01", "57P02", "57P03")
# psycopg's transaction status of a connection no statement of ours runs on, that is unusable.
_PG_NOT_IDLE = frozenset({"ACTIVE", "UNKNOWN"})
# MariaDB/MySQL errors of a lost connection. 2002 and 2003: can't connect. 2006: server gone
# away. 2013 and 2055: lost during a query. 1927: killed.
_MYSQL_GONE = frozenset({1927, 2002, 2003, 2006, 2013, 2055})
# MariaDB/MySQL lock conflicts on a working connection: 1205, a row-lock wait timeout, and
# 1213, a deadlock. Either way the transaction was rolled back, so it may run again.
MYSQL_LOCK_WAIT = 1205
_MYSQL_CONFLICTS = frozenset({MYSQL_LOCK_WAIT, 1213})


class Vendor:
    """A database without special support: the answers every vendor starts from."""

    #: The PostgreSQL functions of the fast path can serve this database.
    has_functions: ClassVar[bool] = False
    #: Snapshot loads stream rows with ``COPY``.
    copies: ClassVar[bool] = False
    #: A snapshot export reads one repeatable, read-only snapshot of the database.
    repeatable_export: ClassVar[bool] = False
    #: A write transaction takes the database's write lock first and waits while it is busy.
    locks_database_first: ClassVar[bool] = False
    #: A transaction refused by a deadlock or a lock wait may run again.
    retries_conflicts: ClassVar[bool] = False
    #: The admin's search may use trigram indexes.
    trigram_search: ClassVar[bool] = False
    #: The planner estimates how many rows a query returns.
    estimates_rows: ClassVar[bool] = False
    #: The planner needs the matching ids spelled out to sort few matches by an index.
    needs_id_lists: ClassVar[bool] = False
    #: The SQL of the database's clock, or None for the host's.
    now_sql: ClassVar[str | None] = None

    def connection_lost(self, cause: BaseException) -> bool:
        """Whether the driver's error ``cause`` means the connection is gone."""
        return False

    def lock_conflict(self, cause: BaseException) -> bool:
        """Whether the driver's error ``cause`` is a deadlock or a lock-wait timeout."""
        return False

    def broken(self, connection: Any) -> bool:
        """Whether the driver connection under a Django ``connection`` is unusable."""
        raw = connection.connection
        return raw is not None and bool(getattr(raw, "broken", False) or getattr(raw, "closed", 0))

    def sorts_by_code_point(self, connection: Any) -> bool:
        """Whether the id columns sort by code point, so a prefix is an index range."""
        return False

    def code_point_collation(self, connection: Any) -> str | None:
        """The collation that orders text as Python does.

        It is ``""`` when the default order already does; None when no collation does.
        """
        return None

    def next_prefix_sql(self) -> str:
        """SQL of the smallest id past the part of ``v.x`` before a separator.

        Its parameters are the separator twice, then the character after it.
        """
        return (
            "CASE WHEN instr(v.x, %s) = 0 THEN v.x || char(1)"
            " ELSE substr(v.x, 1, instr(v.x, %s) - 1) || %s END"
        )


class SQLite(Vendor):
    """SQLite: one writer at a time, in this process, sorting by code point."""

    locks_database_first = True
    needs_id_lists = True

    def sorts_by_code_point(self, connection: Any) -> bool:
        return True  # BINARY collation compares UTF-8 bytes: code point order

    def code_point_collation(self, connection: Any) -> str | None:
        return ""


class PostgreSQL(Vendor):
    """PostgreSQL: the fast path's functions, COPY, trigram search and the planner's counts."""

    has_functions = True
    copies = True
    repeatable_export = True
    trigram_search = True
    estimates_rows = True
    now_sql = "SELECT statement_timestamp()"

    def connection_lost(self, cause: BaseException) -> bool:
        # psycopg raises errors of its own, such as on a closed socket, without a SQLSTATE.
        sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        return sqlstate is None or str(sqlstate).startswith(_PG_GONE)

    def broken(self, connection: Any) -> bool:
        # A kill can leave psycopg's connection open with a command still in progress, or
        # its state unknown. Every later statement then fails ("another command is already
        # in progress"): it is as unusable as a closed one.
        status = getattr(getattr(connection.connection, "info", None), "transaction_status", None)
        return super().broken(connection) or getattr(status, "name", "") in _PG_NOT_IDLE

    def sorts_by_code_point(self, connection: Any) -> bool:
        locale = self._locale(connection)
        return locale in ("c", "posix") or locale.startswith("c.")

    def code_point_collation(self, connection: Any) -> str | None:
        return "" if self.sorts_by_code_point(connection) else "C"

    def next_prefix_sql(self) -> str:
        return (
            "CASE WHEN strpos(v.x, %s) = 0 THEN v.x || chr(1)"
            " ELSE substr(v.x, 1, strpos(v.x, %s) - 1) || %s END"
        )

    @staticmethod
    def _locale(connection: Any) -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT datcollate FROM pg_database WHERE datname = current_database()")
            row = cursor.fetchone()
        return str(row[0]).lower() if row else ""


class MySQL(Vendor):
    """MariaDB and MySQL: conflicts retried, binary id columns (migration 0009)."""

    retries_conflicts = True
    now_sql = "SELECT UTC_TIMESTAMP(6)"

    def connection_lost(self, cause: BaseException) -> bool:
        return bool(cause.args) and cause.args[0] in _MYSQL_GONE

    def lock_conflict(self, cause: BaseException) -> bool:
        return bool(cause.args) and cause.args[0] in _MYSQL_CONFLICTS

    def broken(self, connection: Any) -> bool:
        # mysqlclient does not mark a lost connection: it is pinged.
        return connection.connection is not None and not connection.is_usable()

    def sorts_by_code_point(self, connection: Any) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COLLATION_NAME FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'chatstate_subscription'"
                " AND COLUMN_NAME = 'thread_id'"
            )
            row = cursor.fetchone()
        return row is not None and str(row[0]).endswith("_bin")

    def next_prefix_sql(self) -> str:
        # || is OR here: CONCAT, and CHAR() of a character set.
        return (
            "CASE WHEN instr(v.x, %s) = 0 THEN CONCAT(v.x, CHAR(1 USING utf8mb4))"
            " ELSE CONCAT(substr(v.x, 1, instr(v.x, %s) - 1), %s) END"
        )


class Oracle(Vendor):
    """Oracle: only its clock differs from the defaults."""

    now_sql = "SELECT SYSTIMESTAMP FROM DUAL"


VENDORS: dict[str, Vendor] = {
    "sqlite": SQLite(),
    "postgresql": PostgreSQL(),
    "mysql": MySQL(),
    "oracle": Oracle(),
}
_DEFAULT = Vendor()


def vendor_of(connection: Any) -> Vendor:
    """The :class:`Vendor` of a Django connection."""
    return VENDORS.get(connection.vendor, _DEFAULT)
