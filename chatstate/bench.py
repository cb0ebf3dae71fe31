"""The message-cycle benchmark behind ``manage.py chatstate_bench``.

``run_bench`` runs M message cycles split over N worker *processes* (``multiprocessing``
spawn: each child calls ``django.setup()`` with the parent's ``DJANGO_SETTINGS_MODULE``),
released together by a barrier, and returns one figures dict (see :data:`FIELDS`).

A cycle is DESIGN.md's hot path — claim the dedupe key, check the subscription, take the
thread lock, read the thread state, write it (a counter incremented), release the lock —
run one of three ways (``mode``):

* ``cycle`` — through ``handle_message`` (the public API a webhook view uses);
* ``primitives`` — the six public calls one by one (``claim_dedupe``, ``is_subscribed``,
  ``lock``, ``thread_state``, ``put_thread_state``, ``release_lock``);
* ``raw`` — PostgreSQL only: a plain psycopg connection (no Django, no chatstate Python)
  sending the two statements of the fast path, ``chatstate_enter`` and ``chatstate_commit``
  in autocommit mode. It is the floor the Django path is measured against. (A bare two-CTE
  cycle would be no faster and loses a guarantee: a CTE reads the state in the snapshot its
  statement started with, so a lock freed while the statement waited would hand back the
  state from before the previous holder's write; the functions re-read after locking.)

Each worker uses its own 100 threads (round robin) and unique message ids, so the cycles
are uncontended on the lock and the figures show the cost of the cycle itself.

Statements and commits per cycle are counted in the parent, on one warm cycle (a thread
whose state row already exists), with :func:`count_cycle`: statements through
``connection.execute_wrapper``; commits as the transactions the cycle ends — each statement
run outside ``transaction.atomic()`` (autocommit: one statement, one transaction) plus each
outermost atomic block that commits. ``write_commits_per_cycle`` counts only those
transactions that change or lock rows (a statement starting with INSERT/UPDATE/DELETE, one
with FOR UPDATE, or a call of a ``chatstate_`` function that writes) — the ones that cost
a WAL flush. For Redis, round trips are counted instead (each command or pipeline sent).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import re
import statistics
import time
from array import array
from collections.abc import Callable, Iterator
from typing import Any

FIELDS = (
    "adapter",
    "database_vendor",
    "mode",
    "workers",
    "cycles",
    "seconds",
    "cycles_per_s",
    "ops_per_s",
    "p50_ms",
    "p99_ms",
    "statements_per_cycle",
    "commits_per_cycle",
    "write_commits_per_cycle",
    "round_trips_per_cycle",
    "history",
)
ADAPTERS = ("memory", "database", "redis")
MODES = ("cycle", "primitives", "raw")
THREADS_PER_WORKER = 100
#: Public calls per cycle, for ``ops_per_s``.
OPS_PER_CYCLE = {"cycle": 1, "primitives": 6, "raw": 1}
_WARMUP_CYCLES = 20

Config = dict[str, Any]


# -- building adapters ---------------------------------------------------------------------


def make_adapter(config: Config) -> Any:
    """The adapter ``config`` names, in the benchmark's namespace."""
    kind, namespace = config["adapter"], config["namespace"]
    if kind == "memory":
        from chatstate.adapters.memory import MemoryStateAdapter

        return MemoryStateAdapter(namespace=namespace)
    if kind == "database":
        from chatstate.adapters.database import DatabaseStateAdapter

        return DatabaseStateAdapter(
            namespace=namespace, using=config["using"], fast_sql=config["fast_sql"]
        )
    if kind == "redis":
        try:
            from chatstate.adapters.redis import RedisStateAdapter
        except ImportError as exc:
            raise ValueError(
                f"--adapter redis: chatstate.adapters.redis is unavailable ({exc})"
            ) from exc
        return RedisStateAdapter(namespace=namespace, alias=config["redis_alias"])
    raise ValueError(f"adapter must be one of {', '.join(ADAPTERS)}, not {kind!r}")


def thread_ids(worker: int) -> list[str]:
    """The threads worker ``worker`` cycles over (its own, so no lock is contended)."""
    return [f"bench-w{worker}-t{j}" for j in range(THREADS_PER_WORKER)]


# -- one cycle, three ways -----------------------------------------------------------------


def cycle_fn(config: Config, adapter: Any, worker: int) -> Callable[[int], None]:
    """A function running cycle ``i`` of ``worker`` in the configured mode."""
    threads = thread_ids(worker)
    owner = f"bench-worker-{worker}"
    limit = config["dedupe_limit"]
    prefix = f"w{worker}-{config['run_id']}-m"
    n_threads = len(threads)
    mode = config["mode"]

    if mode == "cycle":

        def run_cycle(i: int) -> None:
            with adapter.handle_message(
                ("bench", f"{prefix}{i}"),
                thread_id=threads[i % n_threads],
                owner=owner,
                dedupe_limit=limit,
            ) as msg:
                if msg.acquired:
                    msg.state["n"] = msg.state.get("n", 0) + 1

        return run_cycle

    if mode == "primitives":

        def run_primitives(i: int) -> None:
            thread = threads[i % n_threads]
            if not adapter.claim_dedupe(("bench", f"{prefix}{i}"), limit):
                return
            adapter.is_subscribed(thread)
            if adapter.lock(thread, owner) != "acquired":
                return
            state = adapter.thread_state(thread)
            state["n"] = state.get("n", 0) + 1
            adapter.put_thread_state(thread, state)
            adapter.release_lock(thread, owner)

        return run_primitives

    return raw_cycle_fn(config, adapter, threads, owner, prefix)


def raw_cycle_fn(
    config: Config, adapter: Any, threads: list[str], owner: str, prefix: str
) -> Callable[[int], None]:
    """The raw baseline: the fast path's two statements from a plain psycopg connection."""
    import json

    import psycopg

    conn = psycopg.connect(**config["psycopg"], autocommit=True)
    enter = (
        "SELECT * FROM chatstate_enter(%s::text, 'bench', %s::text, %s::bigint, %s::text,"
        " %s::text, 'reject', '{}'::jsonb, %s::float8)"
    )
    commit = "SELECT * FROM chatstate_commit(%s::text, %s::text, %s::text, %s::jsonb)"
    ns, limit, ttl = config["namespace"], config["dedupe_limit"], adapter.lock_ttl
    n_threads = len(threads)
    cursor = conn.cursor()

    def run_raw(i: int) -> None:
        thread = threads[i % n_threads]
        cursor.execute(enter, (ns, f"{prefix}{i}", limit, thread, owner, ttl), prepare=True)
        claimed, _subscribed, result, state = cursor.fetchone()  # type: ignore[misc]
        if claimed and result == "acquired":
            state = state or {}
            state["n"] = state.get("n", 0) + 1
            cursor.execute(commit, (ns, thread, owner, json.dumps(state)), prepare=True)
            released, holder, _pending = cursor.fetchone()  # type: ignore[misc]
            if not released:
                raise RuntimeError(f"raw cycle lost the lock {thread!r} to {holder!r}")

    return run_raw


# -- the worker processes ------------------------------------------------------------------


def _worker(config: Config, worker: int, first: int, count: int, barrier: Any, out: Any) -> None:
    """A child process: set Django up, warm up, wait at the barrier, run ``count`` cycles."""
    import django

    django.setup()
    from django.db import connections

    connections.close_all()  # nothing should be inherited under spawn; be sure
    try:
        adapter = make_adapter(config)
        if config["adapter"] == "memory":
            _subscribe(adapter, config, worker)
            _memory_history(adapter, config)
        run = cycle_fn(config, adapter, worker)
        for i in range(_WARMUP_CYCLES):
            run(-1 - i)  # negative ids: the warm-up messages never collide with the run's
        latencies = array("d")
        append = latencies.append
        clock = time.perf_counter
        barrier.wait()
        start = clock()
        for i in range(first, first + count):
            t0 = clock()
            run(i)
            append(clock() - t0)
        end = clock()
        out.put((worker, start, end, latencies.tobytes(), None))
    except BaseException as exc:  # report, so the parent does not wait forever
        with contextlib.suppress(Exception):
            barrier.abort()
        out.put((worker, 0.0, 0.0, b"", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        connections.close_all()


def _subscribe(adapter: Any, config: Config, worker: int | None) -> None:
    workers = range(config["workers"]) if worker is None else (worker,)
    for w in workers:
        for thread in thread_ids(w):
            adapter.subscribe(thread)


def _memory_history(adapter: Any, config: Config) -> None:
    # Each process has its own memory adapter: fill this one (the parent cannot).
    history = config["history"]
    for i in range(history):
        adapter.mark_dedupe(("history", f"h{i}"), config["dedupe_limit"])
    for i in range(history):
        adapter.put_thread_state(f"history-t{i}", {"n": i})


def _run_workers(config: Config) -> tuple[float, list[float]]:
    """Start the workers, release them together; (wall seconds, every cycle's latency)."""
    ctx = multiprocessing.get_context("spawn")
    workers, cycles = config["workers"], config["cycles"]
    barrier = ctx.Barrier(workers)
    out = ctx.Queue()
    shares = [cycles // workers + (1 if w < cycles % workers else 0) for w in range(workers)]
    firsts = list(itertools.accumulate([0, *shares[:-1]]))
    procs = [
        ctx.Process(
            target=_worker,
            args=(config, w, firsts[w], shares[w], barrier, out),
            name=f"chatstate-bench-{w}",
        )
        for w in range(workers)
    ]
    for proc in procs:
        proc.start()
    results = []
    try:
        for _ in procs:
            results.append(out.get())
    finally:
        for proc in procs:
            proc.join()
    errors = [f"worker {w}: {err}" for w, _, _, _, err in results if err]
    if errors:
        raise RuntimeError("; ".join(errors))
    seconds = max(r[2] for r in results) - min(r[1] for r in results)
    latencies: list[float] = []
    for r in results:
        chunk = array("d")
        chunk.frombytes(r[3])
        latencies.extend(chunk)
    return seconds, latencies


# -- counting statements, commits and round trips ------------------------------------------


_WRITE_PREFIXES = ("INSERT", "UPDATE", "DELETE")
_WRITING_FUNCTION = re.compile(r"\bchatstate_(claim|withdraw|lock|release|enter|commit|abort)\(")


def _is_write(sql: str) -> bool:
    """Whether ``sql`` writes or locks rows (so its transaction's commit flushes WAL)."""
    text = sql.lstrip()
    return (
        text.upper().startswith(_WRITE_PREFIXES)
        or "FOR UPDATE" in text.upper()
        or _WRITING_FUNCTION.search(text) is not None
    )


_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@contextlib.contextmanager
def count_statements(using: str) -> Iterator[dict[str, int]]:
    """Count the statements, round trips and committed transactions on ``using`` in the block.

    Yields ``{"statements", "round_trips", "commits", "write_commits"}``, filled in as the
    block runs:

    * ``statements`` — every statement sent through a Django cursor (savepoints included);
    * ``round_trips`` — those, plus the BEGIN and COMMIT the driver sends around each
      outermost ``transaction.atomic()`` block (on SQLite, in process, Django sends its own
      BEGIN as a statement and COMMIT costs no round trip). This is what Django logs in
      ``connection.queries`` and what ``django_assert_num_queries`` counts;
    * ``commits`` — committed transactions: each statement run outside
      ``transaction.atomic()`` (autocommit) and each outermost atomic block that commits;
    * ``write_commits`` — those transactions that write or lock rows (see :func:`_is_write`):
      the ones that cost a WAL flush.
    """
    from django.db import connections

    connection = connections[using]
    counts = {"statements": 0, "round_trips": 0, "commits": 0, "write_commits": 0}
    pending_write = [False]
    driver_begin = connection.vendor != "sqlite"

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        counts["statements"] += 1
        counts["round_trips"] += 1
        control = sql.lstrip().upper().startswith(_TRANSACTION_CONTROL)
        if connection.in_atomic_block or not connection.get_autocommit():
            pending_write[0] = pending_write[0] or _is_write(sql)
        elif not control:
            counts["commits"] += 1
            counts["write_commits"] += _is_write(sql)
        return execute(sql, params, many, context)

    original_commit = connection.commit

    def commit() -> None:
        counts["commits"] += 1
        counts["write_commits"] += pending_write[0]
        counts["round_trips"] += 2 if driver_begin else 1
        pending_write[0] = False
        original_commit()

    connection.commit = commit  # type: ignore[method-assign]
    try:
        with connection.execute_wrapper(wrapper):
            yield counts
    finally:
        del connection.commit


@contextlib.contextmanager
def count_redis_round_trips() -> Iterator[dict[str, int]]:
    """Count Redis round trips in the block: each command, each pipeline executed."""
    import redis.client

    counts = {"round_trips": 0}
    classes = (redis.client.Redis, redis.client.Pipeline)
    originals = (redis.client.Redis.execute_command, redis.client.Pipeline.execute)

    def command(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(self, redis.client.Pipeline):
            counts["round_trips"] += 1
        return originals[0](self, *args, **kwargs)

    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["round_trips"] += 1
        return originals[1](self, *args, **kwargs)

    classes[0].execute_command = command  # type: ignore[method-assign]
    classes[1].execute = execute  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        classes[0].execute_command = originals[0]  # type: ignore[method-assign]
        classes[1].execute = originals[1]  # type: ignore[method-assign]


def count_cycle(config: Config, adapter: Any) -> dict[str, int | None]:
    """Statements, commits and round trips of one warm cycle, run in this process."""
    run = cycle_fn(config, adapter, config["workers"])  # a thread set no worker uses
    run(-1_000_001)  # creates the thread's state row: the counted cycle is a warm one
    figures: dict[str, int | None] = {
        "statements_per_cycle": None,
        "commits_per_cycle": None,
        "write_commits_per_cycle": None,
        "round_trips_per_cycle": None,
    }
    if config["adapter"] == "database" and config["mode"] != "raw":
        with count_statements(config["using"]) as counts:
            run(-1_000_002)
        figures["statements_per_cycle"] = counts["statements"]
        figures["commits_per_cycle"] = counts["commits"]
        figures["write_commits_per_cycle"] = counts["write_commits"]
        figures["round_trips_per_cycle"] = counts["round_trips"]
    elif config["mode"] == "raw":
        # By construction: chatstate_enter + chatstate_commit, autocommit, both write.
        figures.update(
            statements_per_cycle=2,
            commits_per_cycle=2,
            write_commits_per_cycle=2,
            round_trips_per_cycle=2,
        )
    elif config["adapter"] == "redis":
        with count_redis_round_trips() as rt:
            run(-1_000_002)
        figures["round_trips_per_cycle"] = rt["round_trips"]
    return figures


# -- preparing and cleaning the namespace --------------------------------------------------


def prefill_history(config: Config) -> None:
    """Put ``history`` dedupe keys (positions 1..K, window head K) and thread states in the
    namespace, in a few set-based statements (PostgreSQL) or batched inserts (elsewhere)."""
    history = config["history"]
    if not history or config["adapter"] != "database":
        return
    from django.db import connections, transaction

    from chatstate.models import DedupeEntry, DedupeWindow, ThreadState

    ns, using = config["namespace"], config["using"]
    connection = connections[using]
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO chatstate_dedupeentry"
                    " (namespace, adapter, message_id, seq, created_at)"
                    " SELECT %s, 'history', 'h' || i, i, now() FROM generate_series(1, %s) i",
                    (ns, history),
                )
                cursor.execute(
                    "INSERT INTO chatstate_threadstate (namespace, thread_id, value, updated_at)"
                    " SELECT %s, 'history-t' || i, jsonb_build_object('n', i), now()"
                    " FROM generate_series(1, %s) i",
                    (ns, history),
                )
        else:
            for start in range(0, history, 5000):
                stop = min(history, start + 5000)
                DedupeEntry.objects.using(using).bulk_create(
                    DedupeEntry(namespace=ns, adapter="history", message_id=f"h{i}", seq=i)
                    for i in range(start + 1, stop + 1)
                )
                ThreadState.objects.using(using).bulk_create(
                    ThreadState(namespace=ns, thread_id=f"history-t{i}", value={"n": i})
                    for i in range(start + 1, stop + 1)
                )
        DedupeWindow.objects.using(using).update_or_create(namespace=ns, defaults={"head": history})
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE chatstate_dedupeentry")
            cursor.execute("ANALYZE chatstate_threadstate")


def clear_namespace(config: Config) -> None:
    """Remove everything the run put in its namespace (database: its rows)."""
    if config["adapter"] == "database":
        from django.db import transaction

        from chatstate.models import (
            ChannelState,
            DedupeEntry,
            DedupeWindow,
            Lock,
            PendingLockEntry,
            Subscription,
            ThreadState,
        )

        with transaction.atomic(using=config["using"]):
            for model in (
                Subscription,
                DedupeEntry,
                DedupeWindow,
                ThreadState,
                ChannelState,
                Lock,
                PendingLockEntry,
            ):
                model.objects.using(config["using"]).filter(namespace=config["namespace"]).delete()
    elif config["adapter"] == "redis":
        adapter = make_adapter(config)
        clear = getattr(adapter, "clear", None)
        if clear is not None:
            clear()


# -- the entry point -----------------------------------------------------------------------


def build_config(
    adapter: str = "database",
    workers: int = 1,
    cycles: int = 1000,
    mode: str = "cycle",
    history: int = 0,
    using: str | None = None,
    fast_sql: bool = True,
    redis_alias: str = "default",
) -> Config:
    """Check the options and resolve what the workers need; ``ValueError`` when bad."""
    if adapter not in ADAPTERS:
        raise ValueError(f"adapter must be one of {', '.join(ADAPTERS)}, not {adapter!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    for name, value, low in (
        ("workers", workers, 1),
        ("cycles", cycles, 1),
        ("history", history, 0),
    ):
        if type(value) is not int or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if cycles < workers:
        raise ValueError(f"cycles ({cycles}) must be at least workers ({workers})")
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise ValueError("the worker processes need DJANGO_SETTINGS_MODULE in the environment")
    from django.conf import settings
    from django.db import connections

    from chatstate import conf

    config: Config = {
        "adapter": adapter,
        "workers": workers,
        "cycles": cycles,
        "mode": mode,
        "history": history,
        "fast_sql": fast_sql,
        "redis_alias": redis_alias,
        "namespace": f"bench-{os.getpid()}-{int(time.time() * 1000) % 10**9}",
        "run_id": f"{os.getpid()}x{time.monotonic_ns() % 10**9}",
        # A full window of ``history`` keys: each claim then trims one (the steady state).
        "dedupe_limit": history or conf.get("DEDUPE_LIMIT"),
        "using": None,
        "database_vendor": None,
    }
    if adapter == "database":
        from chatstate.adapters.database import DatabaseStateAdapter

        probe = DatabaseStateAdapter(namespace=config["namespace"], using=using)
        config["using"] = probe.using
        config["database_vendor"] = connections[probe.using].vendor
        config["fast_sql"] = probe.fast_sql and fast_sql
    if adapter == "redis" and redis_alias not in settings.CACHES:
        raise ValueError(f"--redis-alias {redis_alias!r} is not a cache alias in CACHES")
    if mode == "raw":
        if config["database_vendor"] != "postgresql":
            raise ValueError("--mode raw needs --adapter database on PostgreSQL")
        params = connections[config["using"]].get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("server_side_binding", None)
        config["psycopg"] = params
    return config


def run_bench(config: Config, keep: bool = False) -> dict[str, Any]:
    """Run the benchmark ``config`` describes (see :func:`build_config`); its figures.

    The namespace is fresh, filled (subscriptions, ``history``) before the run and emptied
    after it unless ``keep``.
    """
    from django.db import connections

    try:
        adapter = make_adapter(config)
        if config["adapter"] != "memory":
            _subscribe(adapter, config, None)
            prefill_history(config)
        else:
            _subscribe(adapter, config, config["workers"])
        counted = count_cycle(config, adapter)
        connections.close_all()  # the children open their own
        seconds, latencies = _run_workers(config)
    finally:
        if not keep:
            clear_namespace(config)
    cycles = config["cycles"]
    quantiles = (
        statistics.quantiles(latencies, n=100, method="inclusive")
        if len(latencies) > 1
        else latencies * 99
    )
    rate = cycles / seconds if seconds > 0 else float("inf")
    return {
        # "database_orm": the portable path on a database that has a fast path.
        "adapter": config["adapter"]
        + ("_orm" if config["database_vendor"] == "postgresql" and not config["fast_sql"] else ""),
        "database_vendor": config["database_vendor"],
        "mode": config["mode"],
        "workers": config["workers"],
        "cycles": cycles,
        "seconds": round(seconds, 4),
        "cycles_per_s": round(rate, 1),
        "ops_per_s": round(rate * OPS_PER_CYCLE[config["mode"]], 1),
        "p50_ms": round(quantiles[49] * 1000, 4),
        "p99_ms": round(quantiles[98] * 1000, 4),
        **counted,
        "history": config["history"],
    }


def format_table(figures: dict[str, Any]) -> str:
    """The figures as a two-column table for humans."""
    width = max(len(k) for k in figures)
    lines = [f"{'figure':<{width}}  value", f"{'-' * width}  {'-' * 12}"]
    lines += [f"{k:<{width}}  {'-' if v is None else v}" for k, v in figures.items()]
    return "\n".join(lines)
