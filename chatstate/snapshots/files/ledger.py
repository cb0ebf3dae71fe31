"""``Ledger``: the keys of a snapshot file's big sections in a temporary SQLite database.

This is the streaming reader's exact path. The hashes of
:mod:`chatstate.snapshots.files.hashruns` may show that a cross-entry rule may be broken.
That is a key twice, ``dedupe`` and ``dedupe_order`` holding other keys, a claim whose key
is not in ``dedupe``, or a repeated key in an object. The keys are then loaded here. The
database answers with the exact problems: indexes, first occurrences, the first keys in
sorted order. For a lenient read it gives the exact repairs. It works on disk, with a few
megabytes of cache, whatever the file's size. SQLite compares text by its UTF-8 bytes. That
orders it as Python orders ``str``."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

#: Arrays of keys: ``(i, a, m)`` (``m`` is ``""`` for ids).
KEY_TABLES = ("subscriptions", "dedupe", "dedupe_order")
_BATCH = 10_000
_PRAGMAS = (
    "journal_mode = OFF",
    "synchronous = OFF",
    "cache_size = -4096",
    "temp_store = FILE",
    "locking_mode = EXCLUSIVE",
)
_CLAIM_COLUMNS = "i INTEGER, a TEXT, m TEXT, ok INTEGER, owner, thread_id, expires_at"
_EARLIER = "EXISTS (SELECT 1 FROM {t} u WHERE u.a = t.a AND u.m = t.m AND u.i < t.i)"
_IN = "EXISTS (SELECT 1 FROM {s} x WHERE x.a = {t}.a AND x.m = {t}.m)"


class Ledger:
    """A temporary database, removed by ``close()``."""

    def __init__(self) -> None:
        fd, self.path = tempfile.mkstemp(prefix="chatstate-restore-", suffix=".sqlite3")
        os.close(fd)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        for pragma in _PRAGMAS:
            self.db.execute(f"PRAGMA {pragma}")
        self.tables: set[str] = set()

    def close(self) -> None:
        self.db.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    # -- filling ----------------------------------------------------------------------------

    def fill_keys(self, table: str, rows: Iterable[tuple[int, str, str]]) -> None:
        """``table``, one of ``KEY_TABLES``, holds ``(index, a, m)`` for each valid entry."""
        self._create(table, "i INTEGER, a TEXT, m TEXT", rows, "a, m, i")

    def fill_claims(self, rows: Iterable[tuple[int, str, str, int, Any, Any, Any]]) -> None:
        """``claims`` holds ``(index, a, m, ok, owner, thread_id, expires_at)`` for each
        claim with a valid key.

        ``ok`` means its other fields are valid too."""
        self._create("claims", _CLAIM_COLUMNS, rows, "a, m, i")

    def fill_names(self, table: str, rows: Iterable[tuple[int, str, int]]) -> None:
        """``table`` holds ``(index, key, char position)`` of an object's keys."""
        self._create(table, "i INTEGER, a TEXT, m TEXT DEFAULT '', at INTEGER", None, None)
        self._insert(table, "i, a, at", 3, rows)
        self.db.execute(f'CREATE INDEX "{table}_k" ON "{table}" (a, i)')

    def _create(
        self, table: str, columns: str, rows: Iterable[tuple[Any, ...]] | None, index: str | None
    ) -> None:
        self.db.execute(f'DROP TABLE IF EXISTS "{table}"')
        self.db.execute(f'CREATE TABLE "{table}" ({columns})')
        self.tables.add(table)
        if rows is not None and index is not None:
            width = columns.count(",") + 1
            self._insert(table, None, width, rows)
            self.db.execute(f'CREATE INDEX "{table}_k" ON "{table}" ({index})')

    def _insert(
        self, table: str, names: str | None, width: int, rows: Iterable[tuple[Any, ...]]
    ) -> None:
        marks = ", ".join("?" * width)
        target = f'"{table}"' + (f" ({names})" if names else "")
        iterator = iter(rows)
        self.db.execute("BEGIN")
        while batch := list(islice(iterator, _BATCH)):
            self.db.executemany(f"INSERT INTO {target} VALUES ({marks})", batch)
        self.db.execute("COMMIT")

    def table(self, name: str) -> str:
        """``name`` when filled, else an empty stand-in; a missing section holds nothing."""
        if name not in self.tables:
            columns = _CLAIM_COLUMNS if name == "claims" else "i INTEGER, a TEXT, m TEXT"
            self._create(name, columns, None, None)
        return f'"{name}"'

    # -- questions ----------------------------------------------------------------------------

    def duplicates(self, name: str) -> Iterator[tuple[int, int]]:
        """``(index, index of its first occurrence)`` of each repeated entry, by index."""
        t = self.table(name)
        query = (
            f"SELECT t.i, (SELECT min(u.i) FROM {t} u WHERE u.a = t.a AND u.m = t.m) "
            f"FROM {t} t WHERE {_EARLIER.format(t=t)} ORDER BY t.i"
        )
        yield from self.db.execute(query)

    def count_duplicates(self, name: str) -> int:
        """How many entries of ``name`` repeat an earlier one."""
        t = self.table(name)
        distinct = f"SELECT count(*) FROM (SELECT DISTINCT a, m FROM {t})"
        query = f"SELECT (SELECT count(*) FROM {t}) - ({distinct})"
        return int(self.db.execute(query).fetchone()[0])

    def first_occurrences(self, name: str) -> Iterator[tuple[str, str]]:
        """The keys of ``name``, each at its first occurrence, by index."""
        t = self.table(name)
        query = f"SELECT t.a, t.m FROM {t} t WHERE NOT {_EARLIER.format(t=t)} ORDER BY t.i"
        yield from self.db.execute(query)

    def only_in_dedupe(self) -> Iterator[tuple[str, str]]:
        """The keys of ``dedupe`` not in ``dedupe_order``, sorted, each once."""
        d, o = self.table("dedupe"), self.table("dedupe_order")
        query = (
            f"SELECT DISTINCT t.a, t.m FROM {d} t WHERE NOT {_IN.format(s=o, t='t')} "
            "ORDER BY t.a, t.m"
        )
        yield from self.db.execute(query)

    def only_in_order(self) -> Iterator[tuple[str, str]]:
        """The keys of ``dedupe_order`` not in ``dedupe``, at their first occurrence."""
        d, o = self.table("dedupe"), self.table("dedupe_order")
        query = (
            f"SELECT t.a, t.m FROM {o} t WHERE NOT {_EARLIER.format(t=o)} "
            f"AND NOT {_IN.format(s=d, t='t')} ORDER BY t.i"
        )
        yield from self.db.execute(query)

    def claim_rows(self) -> Iterator[tuple[Any, ...]]:
        """``(index, a, m, ok, owner, thread_id, expires_at, first, known)`` of each claim
        with a valid key, by index.

        ``first`` is the index of the first claim with its key. ``known`` says whether
        ``dedupe`` or ``dedupe_order`` holds the key."""
        c = self.table("claims")
        d, o = self.table("dedupe"), self.table("dedupe_order")
        query = (
            "SELECT t.i, t.a, t.m, t.ok, t.owner, t.thread_id, t.expires_at, "
            f"(SELECT min(u.i) FROM {c} u WHERE u.a = t.a AND u.m = t.m), "
            f"{_IN.format(s=d, t='t')} OR {_IN.format(s=o, t='t')} "
            f"FROM {c} t ORDER BY t.i"
        )
        yield from self.db.execute(query)

    def key_rows(self, name: str) -> Iterator[tuple[int, int]]:
        """``(index, index of the first entry with its key)`` of every row, by index."""
        t = self.table(name)
        query = (
            f"SELECT t.i, (SELECT min(u.i) FROM {t} u WHERE u.a = t.a AND u.m = t.m) "
            f"FROM {t} t ORDER BY t.i"
        )
        yield from self.db.execute(query)

    def first_repeat(self, name: str) -> tuple[int, str, int] | None:
        """``(index, key, char position)`` of the first key of an object seen before."""
        t = self.table(name)
        query = (
            f"SELECT t.i, t.a, t.at FROM {t} t WHERE EXISTS (SELECT 1 FROM {t} u "
            "WHERE u.a = t.a AND u.i < t.i) ORDER BY t.i LIMIT 1"
        )
        row = self.db.execute(query).fetchone()
        return None if row is None else (row[0], row[1], row[2])
