"""Measure the admin at scale on PostgreSQL (a measurement, not a test).

Fills a dedicated database (``chatstate_admin_bench``, or ``$CHATSTATE_ADMIN_BENCH_DB``,
created if missing) with ``--dedupe`` DedupeEntry rows and ``--threads`` ThreadState and
Subscription rows, each thread with a history list of three items and every tenth with an
outbox entry (one in ten of those dead) (plus locks,
pending entries, some with no live holder, and 24 hours of claims per minute), then times,
through Django's test client as a logged-in superuser, the first and deep pages of every
changelist, exact-id, prefix and substring searches (a channel id finds its threads), a
namespace filter and the overview with its charts. With ``--scale 10`` it then grows the
dedupe and thread tables tenfold and measures again, to show the times stay flat.
``--keep-data`` measures again what the last run filled (same sizes). With
``--without-trigram`` it drops the trigram indexes first (as on a server without
``pg_trgm``): searches then match exact ids, parts and prefixes.

    .venv/bin/python bench/admin_scale.py [--dedupe 1000000] [--threads 1000000] [--scale 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = os.environ.get("CHATSTATE_ADMIN_BENCH_DB", "chatstate_admin_bench")
os.environ["CHATSTATE_TEST_DB"] = "postgres"
os.environ["CHATSTATE_PG_NAME"] = DB_NAME
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def create_database() -> None:
    """Creates the bench database on the configured server unless it exists."""
    import psycopg

    from tests.services import PG

    with psycopg.connect(
        host=PG["HOST"],
        port=PG["PORT"],
        user=PG["USER"],
        password=PG["PASSWORD"],
        dbname="postgres",
        autocommit=True,
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone():
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


FILL_SQL = """
INSERT INTO chatstate_dedupeentry (namespace, adapter, message_id, seq, created_at)
SELECT CASE WHEN mod(g, 10) = 0 THEN 'staging' ELSE 'prod' END,
       CASE WHEN mod(g, 3) = 0 THEN 'discord' ELSE 'slack' END,
       (1700000000 + g)::text || '.' || lpad(mod(g::bigint * 7919, 1000000)::text, 6, '0'), g,
       now() - make_interval(secs => %(dedupe_hi)s - g)
FROM generate_series(%(dedupe_lo)s, %(dedupe_hi)s) AS g;

INSERT INTO chatstate_threadstate (namespace, thread_id, value, updated_at)
SELECT CASE WHEN mod(g, 10) = 0 THEN 'staging' ELSE 'prod' END,
       'slack:' || CASE WHEN mod(g, 500) = 7 THEN 'C-support' ELSE 'C' || mod(g, 500) END
       || ':' || (1700000000 + g)::text || '.'
       || lpad(mod(g::bigint * 7919, 1000000)::text, 6, '0'),
       jsonb_build_object('turns', mod(g, 17), 'topic', 'support', 'last', 'm' || g),
       now() - make_interval(secs => mod(g, 86400))
FROM generate_series(%(threads_lo)s, %(threads_hi)s) AS g;

INSERT INTO chatstate_subscription (namespace, thread_id, created_at)
SELECT CASE WHEN mod(g, 10) = 0 THEN 'staging' ELSE 'prod' END,
       'slack:' || CASE WHEN mod(g, 500) = 7 THEN 'C-support' ELSE 'C' || mod(g, 500) END
       || ':' || (1700000000 + g)::text || '.'
       || lpad(mod(g::bigint * 7919, 1000000)::text, 6, '0'),
       now() - make_interval(secs => mod(g, 86400))
FROM generate_series(%(threads_lo)s, %(threads_hi)s) AS g;

INSERT INTO chatstate_listhead (namespace, key, last_seq, first_seq, expires_at, updated_at)
SELECT namespace, 'history:' || thread_id, 3, 1,
       CASE WHEN mod(id, 7) = 0 THEN now() + interval '1 day' END, updated_at
FROM chatstate_threadstate WHERE id BETWEEN %(threads_lo)s AND %(threads_hi)s;

INSERT INTO chatstate_listitem (namespace, key, seq, value)
SELECT t.namespace, 'history:' || t.thread_id, s,
       jsonb_build_object('role', CASE WHEN s = 2 THEN 'bot' ELSE 'user' END,
                          'text', 'message ' || s || ' of ' || t.id)
FROM chatstate_threadstate t, generate_series(1, 3) AS s
WHERE t.id BETWEEN %(threads_lo)s AND %(threads_hi)s;

INSERT INTO chatstate_outboxmessage
    (namespace, key, thread_id, payload, attempts, dead, created_at, due_at)
SELECT namespace, 'slack:r' || id || ':0', thread_id,
       jsonb_build_object('text', 'reply ' || id), CASE WHEN mod(id, 100) = 3 THEN 10 ELSE 0 END,
       mod(id, 100) = 3, updated_at, updated_at
FROM chatstate_threadstate
WHERE id BETWEEN %(threads_lo)s AND %(threads_hi)s AND mod(id, 10) = 3;
"""

SMALL_SQL = """
INSERT INTO chatstate_channelstate (namespace, channel_id, value, updated_at)
SELECT 'prod', 'slack:' || CASE WHEN g = 7 THEN 'C-support' ELSE 'C' || g END,
       jsonb_build_object('topic', 'support'), now()
FROM generate_series(1, 500) AS g;

INSERT INTO chatstate_lock (namespace, key, owner, strategy, metadata, acquired_at, expires_at)
SELECT CASE WHEN g % 10 = 0 THEN 'staging' ELSE 'prod' END,
       'slack:C' || (g % 500) || ':' || g, 'worker-' || (g % 32),
       (ARRAY['reject', 'queue', 'debounce'])[1 + g % 3],
       jsonb_build_object('message_id', 'm' || g),
       now() - make_interval(secs => g), now() + make_interval(secs => 300 - g % 600)
FROM generate_series(1, 2000) AS g;

INSERT INTO chatstate_pendinglockentry (namespace, key, owner, strategy, metadata, enqueued_at)
SELECT l.namespace, l.key, 'worker-' || q, 'queue', jsonb_build_object('message_id', 'q' || q),
       now()
FROM chatstate_lock l, generate_series(1, 3) AS q WHERE l.strategy = 'queue';

INSERT INTO chatstate_pendinglockentry (namespace, key, owner, strategy, metadata, enqueued_at)
SELECT 'prod', 'slack:C9:orphan-' || k, 'worker-' || q, 'queue',
       jsonb_build_object('message_id', 'o' || k || '-' || q), now() - make_interval(mins => k)
FROM generate_series(1, 40) AS k, generate_series(1, 1 + k % 5) AS q;

INSERT INTO chatstate_claimminute (namespace, minute, first_seq)
SELECT 'prod', date_trunc('minute', now()) - make_interval(mins => m),
       1 + (1439 - m) * 40
FROM generate_series(0, 1439) AS m;
"""


def fill(dedupe: tuple[int, int], threads: tuple[int, int], small: bool) -> float:
    """Inserts the given id ranges (server-side ``generate_series``); returns seconds taken."""
    from django.db import connection

    started = time.perf_counter()
    params = {
        "dedupe_lo": dedupe[0],
        "dedupe_hi": dedupe[1],
        "threads_lo": threads[0],
        "threads_hi": threads[1],
    }
    with connection.cursor() as cursor:
        for statement in FILL_SQL.split(";"):
            if statement.strip():
                cursor.execute(statement, params)
        if small:
            for statement in SMALL_SQL.split(";"):
                if statement.strip():
                    cursor.execute(statement)
        cursor.execute(
            "INSERT INTO chatstate_dedupewindow (namespace, head) "
            "SELECT namespace, max(seq) FROM chatstate_dedupeentry GROUP BY namespace "
            "ON CONFLICT (namespace) DO UPDATE SET head = EXCLUDED.head"
        )
        tables = (
            *("dedupeentry", "threadstate", "subscription", "lock", "pendinglockentry"),
            *("listhead", "listitem", "outboxmessage"),
        )
        for table in (*tables, "channelstate", "claimminute"):
            # VACUUM sets the visibility map, as autovacuum would on a live database.
            cursor.execute(f"VACUUM ANALYZE chatstate_{table}")
    return time.perf_counter() - started


def timed(client: object, url: str, repeat: int = 5) -> tuple[float, float]:
    """Median milliseconds of ``repeat`` GETs of ``url`` (after one warm-up GET): wall
    clock, and the CPU this process spent (the page's Python share, which a busy machine
    stretches in wall-clock time but not in CPU time).

    NaN when the page does not exist at this size (the admin redirects with ``?e=1``).
    """
    response = client.get(url)  # type: ignore[attr-defined]
    if response.status_code == 302:
        return float("nan"), float("nan")
    assert response.status_code == 200, (url, response.status_code)
    walls, cpus = [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        client.get(url)  # type: ignore[attr-defined]
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def slack_ts(g: int) -> str:
    """The Slack-style timestamp id the fill gives row ``g`` (as ``FILL_SQL`` builds it)."""
    return f"{1700000000 + g}.{g * 7919 % 1000000:06d}"


def measure(
    client: object, dedupe_rows: int, thread_rows: int
) -> list[tuple[str, tuple[float, float]]]:
    """Times the admin pages an operator opens; returns ``(what, (wall ms, CPU ms))``."""
    base = "/admin/chatstate"
    mid_message = slack_ts(dedupe_rows // 2 + 1)
    mid = thread_rows // 2 + 1
    channel = "C-support" if mid % 500 == 7 else f"C{mid % 500}"
    mid_thread = f"slack:{channel}:{slack_ts(mid)}"
    fraction = slack_ts(mid).split(".")[1]  # six digits inside one thread id (mostly)
    urls = [
        ("dedupe: first page", f"{base}/dedupeentry/"),
        ("dedupe: page 500", f"{base}/dedupeentry/?p=500"),
        ("dedupe: last offered page (1000)", f"{base}/dedupeentry/?p=1000"),
        ("dedupe: search exact message id", f"{base}/dedupeentry/?q={mid_message}"),
        ("dedupe: search adapter:message_id", f"{base}/dedupeentry/?q=slack:{mid_message}"),
        ("dedupe: search prefix 17000123*", f"{base}/dedupeentry/?q=17000123*"),
        (f"dedupe: search substring {fraction}", f"{base}/dedupeentry/?q={fraction}"),
        ("dedupe: namespace filter, page 200", f"{base}/dedupeentry/?namespace=prod&p=200"),
        ("thread state: first page", f"{base}/threadstate/"),
        ("thread state: page 500", f"{base}/threadstate/?p=500"),
        ("thread state: search exact id", f"{base}/threadstate/?q={mid_thread}"),
        ("thread state: search channel C-support", f"{base}/threadstate/?q=C-support"),
        ("thread state: search slack:C-support", f"{base}/threadstate/?q=slack:C-support"),
        ("thread state: search channel C42", f"{base}/threadstate/?q=C42"),
        (f"thread state: search substring {fraction}", f"{base}/threadstate/?q={fraction}"),
        ("thread state: search substring 1700050", f"{base}/threadstate/?q=1700050"),
        ("thread state: search substring, no match", f"{base}/threadstate/?q=zqxj"),
        ("thread state: search 'slack' (every row)", f"{base}/threadstate/?q=slack"),
        ("subscription: first page", f"{base}/subscription/"),
        ("subscription: page 500", f"{base}/subscription/?p=500"),
        ("subscription: search exact id", f"{base}/subscription/?q={mid_thread}"),
        ("subscription: search channel C-support", f"{base}/subscription/?q=C-support"),
        ("channel state: first page", f"{base}/channelstate/"),
        ("channel state: search C-support", f"{base}/channelstate/?q=C-support"),
        ("lock: first page", f"{base}/lock/"),
        ("lock: search owner", f"{base}/lock/?q=worker-7"),
        ("lock: search key substring C42:", f"{base}/lock/?q=C42:"),
        ("pending: search channel C9", f"{base}/pendinglockentry/?q=C9"),
        ("pending: first page", f"{base}/pendinglockentry/"),
        ("lists: first page", f"{base}/listhead/"),
        ("lists: page 500", f"{base}/listhead/?p=500"),
        ("lists: search a thread id (its history)", f"{base}/listhead/?q={mid_thread}"),
        ("lists: search slack:C-support", f"{base}/listhead/?q=slack:C-support"),
        ("lists: search prefix slack:C42:17000*", f"{base}/listhead/?q=slack:C42:17000*"),
        ("outbox: first page", f"{base}/outboxmessage/"),
        ("outbox: page 100", f"{base}/outboxmessage/?p=100"),
        ("outbox: dead", f"{base}/outboxmessage/?status=dead"),
        ("outbox: search a thread id", f"{base}/outboxmessage/?q={mid_thread}"),
        ("overview: prod (charts)", f"{base}/lock/overview/?namespace=prod"),
    ]
    return [(what, timed(client, url)) for what, url in urls]


def holds(dedupe: int, threads: int) -> bool:
    """Whether the bench database holds exactly these many dedupe entries and threads."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM chatstate_dedupeentry),"
            " (SELECT count(*) FROM chatstate_threadstate)"
        )
        return tuple(cursor.fetchone()) == (dedupe, threads)


def create_trigram_indexes() -> None:
    """Builds the trigram indexes as chatstate's migration does (where they are missing)."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection)
    for (app, _), migration in loader.disk_migrations.items():
        module = sys.modules[type(migration).__module__]
        if app == "chatstate" and hasattr(module, "create_indexes"):
            with connection.schema_editor(atomic=False) as editor:
                module.create_indexes(editor)


def drop_trigram_indexes() -> None:
    """Drops the trigram indexes of migration 0006 (the admin then searches without them)."""
    from django.db import connection

    from chatstate.admin.search import TRIGRAM_INDEXES

    with connection.cursor() as cursor:
        for name in TRIGRAM_INDEXES.values():
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dedupe", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1_000_000)
    parser.add_argument("--scale", type=int, default=1, help="then grow the big tables N-fold")
    parser.add_argument(
        "--without-trigram", action="store_true", help="drop the trigram indexes first"
    )
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="measure the rows of the last run if it filled these sizes (no refill)",
    )
    args = parser.parse_args()

    create_database()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    call_command("migrate", verbosity=0)
    dedupe, threads = args.dedupe, args.threads
    keep = args.keep_data and holds(dedupe, threads)
    if not keep:
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE chatstate_dedupeentry, chatstate_dedupewindow, chatstate_threadstate, "
                "chatstate_subscription, chatstate_channelstate, chatstate_lock, "
                "chatstate_pendinglockentry, chatstate_claimminute, chatstate_listhead, "
                "chatstate_listitem, chatstate_outboxmessage RESTART IDENTITY"
            )
    if args.without_trigram:
        drop_trigram_indexes()
    else:  # in case an earlier --without-trigram run dropped them
        create_trigram_indexes()
    user_model = get_user_model()
    user = user_model.objects.filter(
        username="bench"
    ).first() or user_model.objects.create_superuser("bench", "bench@example.com", "bench")
    client = Client()
    client.force_login(user)

    if keep:
        print(f"kept {dedupe:,} dedupe entries and {threads:,} threads from the last run")
    else:
        seconds = fill((1, dedupe), (1, threads), small=True)
        print(f"filled {dedupe:,} dedupe entries and {threads:,} threads in {seconds:.1f} s")
    from chatstate.admin.search import valid_trigram_indexes

    print(f"trigram indexes: {', '.join(sorted(valid_trigram_indexes('default'))) or 'none'}")
    report = {1: measure(client, dedupe, threads)}
    if args.scale > 1:
        seconds = fill(
            (dedupe + 1, dedupe * args.scale), (threads + 1, threads * args.scale), False
        )
        print(
            f"grew to {dedupe * args.scale:,} dedupe entries and {threads * args.scale:,} "
            f"threads in {seconds:.1f} s"
        )
        report[args.scale] = measure(client, dedupe * args.scale, threads * args.scale)

    scales = sorted(report)
    header = "".join(f"{f'{dedupe * s:,} dedupe: wall / CPU ms':>32}" for s in scales)
    print(f"\n{'page':<44}{header}")
    for i, (what, _) in enumerate(report[1]):
        cells = "".join(
            f"{f'{report[s][i][1][0]:.1f} / {report[s][i][1][1]:.1f}':>32}" for s in scales
        )
        print(f"{what:<44}{cells}")
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
