"""``chatstate_bench --server-work`` on PostgreSQL: the server's work per message cycle.

Counted, not timed on the client: ``pg_stat_statements`` (top-level statements) and the WAL
position, around N cycles of chatstate and then of the TypeScript peer, on one server.
The server needs ``shared_preload_libraries=pg_stat_statements``; use a private one, since
every statement of every client on it is counted.

Per cycle: ``cpu_us`` (the CPU time, user + system, of the client's server process, read
from ``/proc`` when the server runs on this machine: everything the backend did for the
client -- parsing, planning, execution, commits -- and not stretched by a busy machine);
``exec_us`` (the statements' execution time, ``total_exec_time``); ``plan_us``
(their planning, ``total_plan_time``: 0 unless ``pg_stat_statements.track_planning`` is on;
statements a client sends unprepared, as the peer's driver does, are planned each time,
while the planning of statements inside functions counts as execution; the table adds
the two, the time that compares across both); ``buffers``
(shared buffers read or hit: ``shared_blks_hit + shared_blks_read``); ``dirtied`` and
``written`` (``shared_blks_dirtied``, ``shared_blks_written``); ``wal_bytes`` (the
statements' own, from ``pg_stat_statements``) and ``wal_lsn_bytes`` (the WAL position's
advance, which also holds commit records and any background writes); ``calls``.

Each cycle runs on a fresh thread with a unique message id, after 20 warm-up cycles. The
dedupe window starts full (``DEDUPE_LIMIT`` keys), so each chatstate claim trims one key, as
in a busy deployment. Each side's tables are vacuumed and analyzed just before its run.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.prepare import vacuum_tables

PEER_DIR = Path(__file__).resolve().parent / "peer"
WARMUP = 20
#: The statements of the observer itself, left out of the sums.
_OBSERVER = ("pg_stat_statements", "pg_current_wal_lsn")
FIELDS = (
    "calls",
    "exec_us",
    "plan_us",
    "buffers",
    "dirtied",
    "written",
    "wal_bytes",
    "wal_lsn_bytes",
    "xids",
)
#: The next transaction id to be assigned, read without assigning one.
_NEXT_XID = "pg_snapshot_xmax(pg_current_snapshot())::text::bigint"


def dsn_of(using: str) -> str:
    """A libpq connection string for Django database ``using``."""
    from django.db import connections

    s = connections[using].settings_dict
    user, password = s.get("USER") or "", s.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return f"postgresql://{auth}{s.get('HOST') or 'localhost'}:{s.get('PORT') or 5432}/{s['NAME']}"


class Observer:
    """A connection of its own that resets and reads ``pg_stat_statements``."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        try:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self.conn.execute("SELECT count(*) FROM pg_stat_statements")
        except psycopg.Error as exc:
            self.conn.close()
            raise RuntimeError(
                "--server-work needs pg_stat_statements loaded on the server "
                f"(shared_preload_libraries=pg_stat_statements): {exc}"
            ) from exc

    def vacuum(self, pattern: str) -> None:
        """The tables named like ``pattern`` vacuumed and analyzed (:func:`vacuum_tables`)."""
        with self.conn.cursor() as cursor:
            vacuum_tables(cursor, pattern)

    def backend_pids(self) -> list[int]:
        """The other client backends on this database (the measured client's)."""
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
        return [row[0] for row in rows]

    def start(self, pids: list[int] | None = None) -> None:
        """Zero the statistics, note the WAL position, the next transaction id and the CPU
        time of ``pids``."""
        self.pids = pids or []
        self.cpu = backend_cpu(self.pids)
        self.conn.execute("SELECT pg_stat_statements_reset()")
        row = self.conn.execute(f"SELECT pg_current_wal_lsn()::text, {_NEXT_XID}").fetchone()
        assert row is not None
        self.lsn, self.xid = row

    def totals(self) -> dict[str, float]:
        """The sums since :meth:`start`, the observer's own statements left out."""
        row = self.conn.execute(
            "SELECT coalesce(sum(calls), 0), coalesce(sum(total_exec_time), 0) * 1000,"
            " coalesce(sum(total_plan_time), 0) * 1000,"
            " coalesce(sum(shared_blks_hit + shared_blks_read), 0),"
            " coalesce(sum(shared_blks_dirtied), 0), coalesce(sum(shared_blks_written), 0),"
            " coalesce(sum(wal_bytes), 0),"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn),"
            f" {_NEXT_XID} - %s"
            " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
            " WHERE datname = current_database())"
            " AND query NOT LIKE ALL (%s)",
            (self.lsn, self.xid, [f"%{name}%" for name in _OBSERVER]),
        ).fetchone()
        assert row is not None
        totals = dict(zip(FIELDS, (float(v) for v in row), strict=True))
        cpu = backend_cpu(self.pids)
        totals["cpu_us"] = float("nan") if cpu is None or self.cpu is None else cpu - self.cpu
        return totals

    def top(self, limit: int = 8) -> list[tuple[str, float, float]]:
        """The heaviest statements since :meth:`start`: (query, calls, exec µs)."""
        rows = self.conn.execute(
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 90), calls,"
            " total_exec_time * 1000 FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND query NOT LIKE ALL (%s) ORDER BY total_exec_time DESC LIMIT %s",
            ([f"%{name}%" for name in _OBSERVER], limit),
        ).fetchall()
        return [(q, float(c), float(t)) for q, c, t in rows]

    def close(self) -> None:
        self.conn.close()


def backend_cpu(pids: list[int]) -> float | None:
    """User + system CPU µs the server processes ``pids`` spent (``/proc``: the server must
    run on this machine; None elsewhere). Unlike statement times, a busy machine does not
    stretch it."""
    if not pids:
        return None
    try:
        ticks = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return None
    return ticks * 1e6 / os.sysconf("SC_CLK_TCK")


def per_cycle(totals: dict[str, float], cycles: int) -> dict[str, float]:
    """Each total divided by the cycles, rounded for a table."""
    return {k: round(v / cycles, 1) for k, v in totals.items()}


#: A full dedupe window of (namespace, limit): ``limit`` done keys (positions 1..limit), head
#: ``limit``; and as many other threads' states (a table whose plans are not those of an
#: empty one). Each statement takes the parameters (namespace, limit).
FILL = (
    "INSERT INTO chatstate_dedupeentry (namespace, adapter, message_id, seq, created_at)"
    " SELECT %s, 'fill', 'f' || i, i, now() FROM generate_series(1, %s) i",
    "INSERT INTO chatstate_threadstate (namespace, thread_id, value, updated_at)"
    " SELECT %s, 'fill-t' || i, '{}', now() FROM generate_series(1, %s) i",
    "INSERT INTO chatstate_dedupewindow (namespace, head) VALUES (%s, %s)",
)


def fill_window(using: str, namespace: str, limit: int) -> None:
    """:data:`FILL` on the database ``using``, in one transaction."""
    from django.db import connections, transaction

    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        for statement in FILL:
            cursor.execute(statement, (namespace, limit))


def clear(using: str, namespace: str) -> None:
    """Remove the run's rows."""
    from django.db import connections

    with connections[using].cursor() as cursor:
        for table in (
            "dedupeentry",
            "dedupewindow",
            "threadstate",
            "lock",
            "pendinglockentry",
            "subscription",
            "claimminute",
        ):
            cursor.execute(f"DELETE FROM chatstate_{table} WHERE namespace = %s", (namespace,))


def measure_chatstate(using: str, observer: Observer, cycles: int) -> dict[str, Any]:
    """``cycles`` message cycles of chatstate's fast path: the server's totals."""
    from chatstate import conf
    from chatstate.adapters.database import DatabaseStateAdapter

    run = f"sw{os.getpid()}x{time.monotonic_ns() % 10**9}"
    namespace = f"bench-{run}"
    limit = int(conf.get("DEDUPE_LIMIT"))
    adapter = DatabaseStateAdapter(namespace=namespace, using=using)
    fill_window(using, namespace, limit)
    observer.vacuum("chatstate\\_%")

    def cycle(i: int) -> None:
        with adapter.handle_message(
            ("bench", f"{run}-m{i}"), thread_id=f"{run}-t{i}", owner="bench", dedupe_limit=limit
        ) as msg:
            if msg.acquired:
                msg.state["n"] = msg.state.get("n", 0) + 1

    try:
        for i in range(WARMUP):
            cycle(-1 - i)
        observer.start(observer.backend_pids())
        for i in range(cycles):
            cycle(i)
        totals = observer.totals()
        top = observer.top()
    finally:
        clear(using, namespace)
    return {"who": "chatstate", "cycles": cycles, **per_cycle(totals, cycles), "top": top}


def peer_installed() -> bool:
    """Whether ``bench/peer`` has its packages (``npm ci``) and Node is on the path."""
    from shutil import which

    return (PEER_DIR / "node_modules" / "@chat-adapter" / "state-pg").is_dir() and bool(
        which("node")
    )


def measure_peer(dsn: str, observer: Observer, cycles: int) -> dict[str, Any]:
    """``cycles`` cycles of ``@chat-adapter/state-pg`` (``peer/serverwork.mjs``)."""
    proc = subprocess.Popen(
        ["node", str(PEER_DIR / "serverwork.mjs"), "--url", dsn, "--cycles", str(cycles)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the peer did not start (see its output above)")
        observer.vacuum("chat\\_state\\_%")
        observer.start(observer.backend_pids())
        proc.stdin.write("go\n")
        proc.stdin.flush()
        done = json.loads(proc.stdout.readline())
        totals = observer.totals()
        top = observer.top()
        proc.stdin.write("clean\n")
        proc.stdin.flush()
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    return {
        "who": "@chat-adapter/state-pg",
        "cycles": done["cycles"],
        **per_cycle(totals, cycles),
        "top": top,
    }


def server_work(using: str, cycles: int, dsn: str | None = None, peer: bool = True) -> dict:
    """Chatstate's and (when installed) the peer's server work per cycle on ``using``."""
    from django.db import connections

    if connections[using].vendor != "postgresql":
        raise ValueError("--server-work measures PostgreSQL: pick a PostgreSQL --database")
    dsn = dsn or dsn_of(using)
    observer = Observer(dsn)
    try:
        rows = [measure_chatstate(using, observer, cycles)]
        if peer and peer_installed():
            rows.append(measure_peer(dsn, observer, cycles))
    finally:
        observer.close()
    return {"server": dsn.rsplit("@", 1)[-1], "rows": rows}


def format_rows(figures: dict) -> str:
    """The rows as a Markdown table, ratios against the peer when it ran, then top statements."""
    rows = figures["rows"]
    head = "| per message cycle | " + " | ".join(r["who"] for r in rows)
    head += " | ratio |" if len(rows) == 2 else " |"
    lines = [f"server work on {figures['server']} ({rows[0]['cycles']:,} cycles each)", "", head]
    lines.append("| --- |" + " ---: |" * (len(rows) + (len(rows) == 2)))
    labels = {
        "cpu_us": "server backend CPU (µs, /proc)",
        "exec_us": "statement execution (µs)",
        "plan_us": "statement planning (µs)",
        "work_us": "execution + planning (µs)",
        "buffers": "shared buffers hit+read",
        "dirtied": "shared buffers dirtied",
        "written": "shared buffers written",
        "wal_bytes": "WAL bytes (statements)",
        "wal_lsn_bytes": "WAL bytes (LSN advance)",
        "xids": "transaction ids (subtransactions' too)",
        "calls": "top-level statements",
    }
    # (the peer's driver sends its statements unprepared: their planning is on every call,
    # where the planning of statements inside chatstate's functions counts as execution)
    rows = [{**r, "work_us": round(r["exec_us"] + r["plan_us"], 1)} for r in rows]
    for key, label in labels.items():
        cells = [f"{r[key]:,}" for r in rows]
        if len(rows) == 2:
            cells.append(f"{rows[0][key] / rows[1][key]:.2f}×" if rows[1][key] else "—")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for r in rows:
        lines += ["", f"{r['who']}: heaviest statements (calls, µs per cycle)"]
        lines += [f"  {c / r['cycles']:5.2f} {t / r['cycles']:8.1f}  {q}" for q, c, t in r["top"]]
    return "\n".join(lines) + "\n"
