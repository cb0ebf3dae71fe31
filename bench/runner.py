"""The message-cycle benchmark behind ``manage.py chatstate_bench``: the worker processes.

``run_bench`` runs M message cycles split over N worker *processes* (``multiprocessing``
spawn: each child calls ``django.setup()`` with the parent's ``DJANGO_SETTINGS_MODULE``),
released together by a barrier, and returns one figures dict (see :data:`FIELDS`). A cycle is
DESIGN.md's hot path (see :mod:`.cycles` for its three modes); statements, commits and round
trips per cycle are counted in the parent on one warm cycle (:mod:`.counting`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
import statistics
import time
from array import array
from collections.abc import Callable
from typing import Any

from bench.counting import count_cycle
from bench.cycles import (
    ADAPTERS,
    Config,
    async_cycle_fn,
    cycle_fn,
    make_adapters,
    namespaces,
    spread,
    thread_ids,
)
from bench.prepare import clear_namespace, fill_histories, prefill_history, vacuum

FIELDS = (
    "adapter",
    "database_vendor",
    "mode",
    "workers",
    "concurrency",
    "namespaces",
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
    "effects",
)
MODES = ("cycle", "primitives", "floor")
#: Old names of modes.
MODE_ALIASES = {"raw": "floor"}
#: Public calls per cycle, for ``ops_per_s``.
OPS_PER_CYCLE = {"cycle": 1, "primitives": 6, "floor": 1}
_WARMUP_CYCLES = 20


# -- the worker processes ------------------------------------------------------------------


def _worker(config: Config, worker: int, first: int, count: int, barrier: Any, out: Any) -> None:
    """A child process: set Django up, warm up, wait at the barrier, run ``count`` cycles."""
    import django

    django.setup()
    from django.db import connections

    connections.close_all()  # nothing should be inherited under spawn; be sure
    try:
        adapters = make_adapters(config)
        if config["adapter"] == "memory":
            for adapter in adapters:
                subscribe_threads(adapter, config, worker)
                fill_histories(adapter, config, range(worker, worker + 1))
                _memory_history(adapter, config)
        if config["concurrency"]:
            start, end, latencies = asyncio.run(_event_loop(config, adapters, barrier, count))
        else:
            start, end, latencies = _loop(config, adapters, worker, first, count, barrier)
        out.put((worker, start, end, latencies.tobytes(), None))
    except BaseException as exc:  # report, so the parent does not wait forever
        with contextlib.suppress(Exception):
            barrier.abort()
        out.put((worker, 0.0, 0.0, b"", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        connections.close_all()


def _loop(
    config: Config, adapters: list[Any], worker: int, first: int, count: int, barrier: Any
) -> tuple[float, float, array[float]]:
    """Cycles ``first`` .. ``first + count`` one after the other (cycle ``i`` on namespace
    ``i % namespaces``): (start, end, latencies)."""
    run = spread([cycle_fn(config, adapter, worker) for adapter in adapters])
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
    return start, clock(), latencies


async def _event_loop(
    config: Config, adapters: list[Any], barrier: Any, count: int
) -> tuple[float, float, array[float]]:
    """``--async``: ``count`` cycles shared by ``concurrency`` coroutines on this loop, each
    on threads of its own (as ``concurrency`` workers would be)."""
    n = config["concurrency"]
    runs = [spread([async_cycle_fn(config, a, w) for a in adapters]) for w in range(n)]
    for w, run in enumerate(runs):
        for i in range(_WARMUP_CYCLES // n + 1):
            await run(-1 - i - w * _WARMUP_CYCLES)
    shares = [count // n + (1 if w < count % n else 0) for w in range(n)]
    latencies = array("d")
    clock = time.perf_counter

    async def one(w: int) -> None:
        run, append = runs[w], latencies.append
        for i in range(shares[w]):
            t0 = clock()
            await run(i)
            append(clock() - t0)

    await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
    start = clock()
    await asyncio.gather(*(one(w) for w in range(n)))
    return start, clock(), latencies


def subscribe_threads(adapter: Any, config: Config, worker: int | None) -> None:
    """Subscribe the threads of ``worker`` (None: of every worker of ``config``)."""
    workers = range(_lanes(config)) if worker is None else (worker,)
    for w in workers:
        for thread in thread_ids(w):
            adapter.subscribe(thread)


def _lanes(config: Config) -> int:
    """How many workers (or coroutines) cycle over threads of their own."""
    return max(config["workers"], config["concurrency"])


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


# -- the entry point -----------------------------------------------------------------------


def build_config(
    adapter: str = "database",
    workers: int = 1,
    cycles: int = 1000,
    mode: str = "cycle",
    history: int = 0,
    using: str | None = None,
    fast_sql: bool = True,
    redis_alias: str | None = None,
    concurrency: int = 0,
    namespaces: int = 1,
    effects: bool = False,
) -> Config:
    """Check the options and resolve what the workers need; ``ValueError`` when bad.

    ``redis_alias`` defaults to the ``alias`` in ``CHATSTATE["OPTIONS"]``, else
    ``"default"`` (as ``RedisStateAdapter``'s)."""
    mode = MODE_ALIASES.get(mode, mode)
    if adapter not in ADAPTERS:
        raise ValueError(f"adapter must be one of {', '.join(ADAPTERS)}, not {adapter!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    for name, value, low in (
        ("workers", workers, 1),
        ("cycles", cycles, 1),
        ("history", history, 0),
        ("concurrency", concurrency, 0),
        ("namespaces", namespaces, 1),
    ):
        if type(value) is not int or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if cycles < workers:
        raise ValueError(f"cycles ({cycles}) must be at least workers ({workers})")
    if concurrency and workers != 1:
        raise ValueError("--async runs one process: give --concurrency, not --workers")
    if effects and mode != "cycle":
        raise ValueError("--effects stages in the cycle: use it with --mode cycle")
    if concurrency and mode == "primitives":
        raise ValueError("--async runs the cycle (or its floor), not the primitives")
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise ValueError("the worker processes need DJANGO_SETTINGS_MODULE in the environment")
    from django.conf import settings
    from django.db import connections

    from chatstate import conf

    config: Config = {
        "adapter": adapter,
        "workers": workers,
        "concurrency": concurrency,
        "cycles": cycles,
        "mode": mode,
        "history": history,
        "effects": bool(effects),
        "fast_sql": fast_sql,
        "redis_alias": redis_alias or (conf.get("OPTIONS") or {}).get("alias", "default"),
        "namespaces": namespaces,
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
    redis_alias = config["redis_alias"]
    if adapter == "redis" and redis_alias not in settings.CACHES:
        raise ValueError(f"--redis-alias {redis_alias!r} is not a cache alias in CACHES")
    if mode == "floor":
        if namespaces != 1:
            raise ValueError("--mode floor runs on one namespace: drop --namespaces")
        cache: Any = settings.CACHES[redis_alias]
        if adapter == "redis" and (cache.get("OPTIONS") or {}).get("CHATSTATE_CLUSTER"):
            raise ValueError("--mode floor drives one Redis server, not a cluster")
        if adapter == "redis":
            config["redis_url"] = cache["LOCATION"]
        elif config["database_vendor"] == "postgresql":
            params = connections[config["using"]].get_connection_params()
            for name in ("cursor_factory", "context", "server_side_binding", "pool"):
                params.pop(name, None)
            params["prepare_threshold"] = 5
            config["psycopg"] = params
        else:
            raise ValueError("--mode floor needs --adapter redis, or database on PostgreSQL")
    return config


def run_bench(
    config: Config, keep: bool = False, say: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Run the benchmark ``config`` describes (see :func:`build_config`); its figures.

    The namespace is fresh, filled (subscriptions, ``history``) before the run and emptied
    after it unless ``keep``. ``say`` is called with a line as each phase starts.
    """
    from django.db import connections

    try:
        say(f"preparing namespace {config['namespace']} ({config['history']:,} history keys)")
        adapters = make_adapters(config)
        for adapter in adapters:
            if config["adapter"] != "memory":
                subscribe_threads(adapter, config, None)
                fill_histories(adapter, config, range(_lanes(config)))
            else:
                subscribe_threads(adapter, config, config["workers"])
        if config["adapter"] != "memory":
            for namespace in namespaces(config):
                prefill_history({**config, "namespace": namespace})
            vacuum(config)
        say("counting the statements of one cycle")
        counted = count_cycle(config, adapters[0])
        connections.close_all()  # the children open their own
        say(f"{config['cycles']:,} cycles on {config['workers']} worker process(es): starting")
        seconds, latencies = _run_workers(config)
        say(f"{config['cycles']:,} cycles done ({seconds:.2f} s measured, start-up excluded)")
    finally:
        if not keep:
            say("removing the run's namespace")
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
        "concurrency": config["concurrency"],
        "namespaces": config["namespaces"],
        "cycles": cycles,
        "seconds": round(seconds, 4),
        "cycles_per_s": round(rate, 1),
        "ops_per_s": round(rate * OPS_PER_CYCLE[config["mode"]], 1),
        "p50_ms": round(quantiles[49] * 1000, 4),
        "p99_ms": round(quantiles[98] * 1000, 4),
        **counted,
        "history": config["history"],
        "effects": config["effects"],
    }
