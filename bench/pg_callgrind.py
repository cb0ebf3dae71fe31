"""The PostgreSQL server's instructions per message cycle, counted by callgrind.

Instruction counts do not swing with the machine's load, as CPU times do. Start a server
whose backends run under callgrind, on a database migrated by chatstate::

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=PostgresMain \\
        --callgrind-out-file=/tmp/pgcg/cg.%p \\
        postgres -D DATA -p 5498 -c listen_addresses=127.0.0.1 -c autovacuum=off

then run ``python bench/pg_callgrind.py --dsn "host=127.0.0.1 port=5498 dbname=bench"``.
One connection warms the functions and tables up (1,100 cycles); a second runs 20 cycles,
then 1,000. It prints the second backend's pid: ``callgrind_annotate /tmp/pgcg/cg.<pid>``
counts what that backend did, connection included (the same for every version). For an
A/B, give each run the same database (``CREATE DATABASE bench TEMPLATE …``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from bench.floors import COMMIT, ENTER, commit_params, released  # noqa: E402
from bench.serverwork_pg import FILL  # noqa: E402

LIMIT = 1000


def fill(conn: psycopg.Connection, ns: str) -> None:
    """A full dedupe window and as many other threads' states (``--server-work``'s),
    analyzed."""
    for statement in FILL:
        conn.execute(statement, (ns, LIMIT))
    for table in ("dedupeentry", "threadstate", "lock"):
        conn.execute(f"VACUUM ANALYZE chatstate_{table}")


def cycles(
    conn: psycopg.Connection, ns: str, prefix: str, state: bool, start: int, stop: int
) -> None:
    """Cycles ``start``..``stop``: a new thread each, or (``state``) one of 100 with state."""
    cursor = conn.cursor()
    for i in range(start, stop):
        thread = f"t{i % 100}" if state else f"{prefix}-t{i}"
        cursor.execute(ENTER, (ns, f"{prefix}{i}", LIMIT, thread, "o", 300.0), prepare=True)
        params = commit_params(cursor.fetchone(), ns, thread, "o")
        if params is None:
            raise RuntimeError(f"cycle {i} did not acquire {thread!r}")
        cursor.execute(COMMIT, params, prepare=True)
        released(cursor.fetchone(), thread)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--state", action="store_true", help="100 threads that keep a state")
    args = parser.parse_args()
    ns = f"cg-{os.getpid()}"
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        fill(conn, ns)
        cycles(conn, ns, "a", args.state, 0, 1100)
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        pid = conn.info.backend_pid
        cycles(conn, ns, "b", args.state, 0, 20)
        cycles(conn, ns, "b", args.state, 20, 1020)
    time.sleep(3)  # the backend writes its counts when it exits
    print(pid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
