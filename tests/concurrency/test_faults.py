"""Faults across OS processes: connections killed under load, a holder killed mid-message.

The invariant of every test: each message id's effect (its id in its thread's ``seen``)
applied exactly once, none lost — counted, with the faults injected, in the figures.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections

from chatstate.types import BackendUnavailable
from tests import services
from tests.concurrency.harness import Crew
from tests.faults.redelivery import deliver, tally, tally_effects

pytestmark = pytest.mark.crossprocess


def _kill_connections(kind: str, spare: list[int], using: str) -> int:
    """Kill every connection of the children to the server (not the parent's: its backends
    ``spare``, and the killer's own, on the database alias ``using``)."""
    if kind == "redis_cluster":  # every client connection of every node (not replication)
        import redis

        from tests import redis_cluster

        killed = 0
        for port in redis_cluster.PORTS:
            admin = redis.Redis(port=port)
            try:
                killed += int(admin.execute_command("CLIENT KILL TYPE normal SKIPME yes"))
            except redis.ConnectionError:
                pass  # a node the failover test killed and has not restarted
            finally:
                admin.close()
        return killed
    if kind == "redis":
        import redis

        db = int(services.REDIS_URL.rsplit("/", 1)[1])
        admin = redis.Redis.from_url(services.REDIS_URL)
        try:
            mine = admin.client_id()
            victims = [
                c for c in admin.client_list() if int(c["db"]) == db and int(c["id"]) != mine
            ]
            return sum(admin.client_kill_filter(_id=c["id"]) for c in victims)
        finally:
            admin.close()
    if connections[using].vendor == "mysql":
        return _kill_mysql_connections(spare, using)
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND pid <> ALL(%s) AND backend_type = 'client backend'",
            [spare],
        )
        killed = int(cursor.fetchone()[0])
    # The parent's idle pooled connections (Django's pool) died too: later tests start anew.
    if "pool" in connections and hasattr(connections["pool"], "close_pool"):
        connections["pool"].close_pool()
    return killed


def _kill_behind_the_bouncer() -> int:
    """PgBouncer: every server connection the bouncer holds to the test database, killed
    through a direct connection of the killer's own (through the bouncer, the server
    connection a killer spared would go on to serve the children). The parent's connection
    through the bouncer is idle meanwhile: the bouncer replaces its server connection."""
    import psycopg

    test_db = connections["default"].settings_dict  # the test database, directly
    params = {
        "host": test_db["HOST"] or "127.0.0.1",
        "port": test_db["PORT"] or 5432,
        "user": test_db["USER"],
        "password": test_db["PASSWORD"],
        "dbname": test_db["NAME"],
    }
    with psycopg.connect(**params, autocommit=True) as direct:
        (killed,) = direct.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND application_name = 'chatstate-tests-pgbouncer'"
        ).fetchone()
    return int(killed)


def _kill_mysql_connections(spare: list[int], using: str) -> int:
    """MariaDB/MySQL: ``KILL CONNECTION`` every other client of the test database."""
    from django.db import OperationalError

    killed = 0
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE()"
            f" AND ID <> CONNECTION_ID() AND ID NOT IN ({', '.join(['%s'] * len(spare))})",
            spare,
        )
        for (victim,) in cursor.fetchall():
            try:
                cursor.execute(f"KILL CONNECTION {int(victim)}")
            except OperationalError:  # 1094: gone meanwhile
                continue
            killed += 1
    return killed


def _backend_ids(using: str) -> list[int]:
    """The server's ids of this process's connections (what the killer spares): the store's
    alias, and the default alias's when it is open."""
    if connections[using].vendor == "mysql":
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            return [int(cursor.fetchone()[0])]
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        spare = [int(cursor.fetchone()[0])]
    default = connections["default"].connection  # open: its backend is spared too
    if default is not None and not default.closed:
        spare.append(default.info.backend_pid)
    return spare


def _deliver_under_kills(
    request: pytest.FixtureRequest, store: Any, crew: Crew, effects: bool
) -> tuple[dict[str, Any], list[dict[str, int]], list[str]]:
    """3 processes deliver 60 messages into 3 threads while a killer kills their connections;
    the figures, the children's reports and the message ids."""
    kind = request.node.callspec.params["store"]
    processes, messages, threads = 3, 60, 3
    ids = [f"m{n}" for n in range(messages)]
    started = crew.event("started")
    work = {"message_ids": ids, "threads": threads, "ttl": 1.0, "block": 6, "hold": 0.03}
    batch = crew.start("deliver_messages", [{**work, "effects": effects}] * processes, timeout=120)
    killed, rounds = 0, 0
    # Redis's load is short (its cycle is fast), and so is the fast path's through PgBouncer:
    # killed often; the ORM path's transactions of several statements need a gap between
    # kills to make progress at all.
    interval = 0.1 if kind.startswith("redis") or kind == "database_pgbouncer" else 0.25
    stop = threading.Event()
    using = getattr(store, "using", "default")  # the store's alias: the test may use no other
    spare = [] if kind == "database_pgbouncer" else _backend_ids(using)

    def killer() -> None:
        nonlocal killed, rounds
        started.wait(timeout=60)  # the children's warm-up is not under test
        try:
            while not stop.wait(interval):
                if kind == "database_pgbouncer":
                    killed += _kill_behind_the_bouncer()
                else:
                    killed += _kill_connections(kind, spare, using)
                rounds += 1
        finally:
            connections[using].close()  # this thread's own

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        reports = batch.wait()
    finally:
        stop.set()
        thread.join()
    figures = {
        "backend": kind,
        "processes": processes,
        "kill_rounds": rounds,
        "connections_killed": killed,
        "unavailable": sum(r.get("unavailable", 0) for r in reports),
        "seconds": batch.seconds,
        **_after_the_kills(lambda: _counts(store, threads, ids, effects)),
    }
    return figures, reports, ids


def _counts(store: Any, threads: int, ids: list[str], effects: bool) -> dict[str, Any]:
    """What the store holds of the messages: applied, doubled, lost (and their effects)."""
    seen = [i for t in range(threads) for i in store.thread_state(f"t{t}").get("seen", [])]
    counts = tally(seen, ids)
    if effects:
        counts.update(tally_effects(store, [f"t{t}" for t in range(threads)], ids))
    return counts


def _after_the_kills(read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``read()``, again while the store is still unavailable (a connection the killer broke
    may reach the first call after it: PgBouncer can hand out a server it has not yet seen
    die), up to 5 s."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return read()
        except BackendUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_connections_killed_under_load_neither_double_nor_lose(
    request: pytest.FixtureRequest, store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    counts, reports, ids = _deliver_under_kills(request, store, crew, effects=False)
    figures(**counts)
    messages, processes = len(ids), len(reports)
    assert counts["connections_killed"] >= 3, "too few connections were killed to mean anything"
    assert (counts["applied"], counts["doubles"], counts["lost"]) == (messages, 0, 0)
    # Every process delivers every message: each delivery ends handled (once per message) or
    # found done — also the one whose commit's reply a kill lost (the commit applied, its
    # outcome unknown to the deliverer, which delivers again and finds the message done).
    handled, done = (sum(r.get(k, 0) for r in reports) for k in ("handled", "done"))
    assert handled + done == processes * messages
    assert messages - counts["unavailable"] <= handled <= messages
    assert store.snapshot().locks == {}


def test_killed_connections_keep_every_staged_effect_exact(
    request: pytest.FixtureRequest, store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    """The unit of work under kills: the channel counter, each thread's history and the
    outbox agree exactly with the messages applied."""
    counts, _, ids = _deliver_under_kills(request, store, crew, effects=True)
    figures(**counts)
    messages = len(ids)
    assert counts["connections_killed"] >= 3, "too few connections were killed to mean anything"
    assert (counts["applied"], counts["doubles"], counts["lost"]) == (messages, 0, 0)
    assert counts["counter"] == messages
    assert counts["history_mismatches"] == 0
    assert (counts["outbox_doubles"], counts["outbox_lost"]) == (0, 0)


def test_a_killed_holders_message_is_handled_after_its_lease(
    request: pytest.FixtureRequest, store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    kind = request.node.callspec.params["store"]
    # Long enough that the first redelivery meets the claim in progress on a loaded machine
    # (at 1 s, a cluster client's first connection once took as long as the whole lease).
    ttl = 2.0
    held = crew.event("held")
    doomed = crew.start(
        "enter_and_hang", [{"message_id": "m1", "thread_id": "t", "ttl": ttl}], timeout=120
    )
    assert held.wait(timeout=60), "the holder never reported holding the message"
    assert not store.is_subscribed("t")  # this process connected before the lease counts
    (holder,) = doomed.processes
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(timeout=10)
    started = time.monotonic()
    met = deliver(store, "m1", thread_id="t", ttl=60, pause=0.05)
    waited = time.monotonic() - started
    counts = tally(store.thread_state("t").get("seen", []), ["m1"])
    figures(backend=kind, redeliveries=met.get("redeliveries", 0), handled_after=waited, **counts)
    assert met.get("handled") == 1 and met.get("in_progress", 0) >= 1
    assert counts == {"messages": 1, "applied": 1, "doubles": 0, "lost": 0}
    assert store.is_duplicate(("platform", "m1"))
