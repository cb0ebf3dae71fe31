"""The outbox's throughput (``chatstate_bench --outbox``): N entries committed by message
cycles over several threads, then dispatchers draining them, timed.

The sender does nothing, so the figure is the backend's dispatch cost: a claim per batch and
a removal per entry. The entries are spread over many chat threads (one thread's entries
leave in order, one at a time; different threads go in parallel).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bench.cycles import Config, make_adapter
from bench.runner import build_config, clear_namespace

#: The chat threads each committing thread spreads its entries over: its own, so that two
#: committers never meet on one chat thread (one would be refused as busy).
CHAT_THREADS = 200
#: The bound on each phase: the run stops by itself.
PHASE_SECONDS = 600.0


def outbox_config(
    adapter: str, entries: int, committers: int, dispatchers: int, batch: int, **options: Any
) -> Config:
    """Check the options (as :func:`~bench.build_config` does, plus the outbox's);
    ``ValueError`` when bad."""
    if adapter == "memory":
        raise ValueError("--outbox measures a shared backend: --adapter database or redis")
    for name, value in (("dispatchers", dispatchers), ("batch", batch)):
        if type(value) is not int or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    config = build_config(adapter=adapter, workers=committers, cycles=entries, **options)
    return {**config, "mode": "outbox", "dispatchers": dispatchers, "batch": batch}


def _in_threads(count: int, body: Callable[[int], None]) -> float:
    """Run ``body(i)`` in ``count`` threads started together; the seconds until all end.
    Each thread closes its own database connections; the first error is raised."""
    from django.db import connections

    errors: list[BaseException] = []
    barrier = threading.Barrier(count + 1)

    def run(i: int) -> None:
        try:
            barrier.wait()
            body(i)
        except BaseException as exc:  # reported to the caller
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(PHASE_SECONDS)
    seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"the outbox benchmark failed: {errors[0]!r}") from errors[0]
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError(f"the outbox benchmark did not end within {PHASE_SECONDS:g} s")
    return seconds


def run_outbox_bench(config: Config, keep: bool = False) -> dict[str, Any]:
    """Commit ``cycles`` entries over ``workers`` threads (one message cycle, one send
    each), then drain them with ``dispatchers`` threads in batches of ``batch``; the
    figures, ``entries_per_s`` the dispatch's."""
    entries, committers = config["cycles"], config["workers"]
    adapter = make_adapter(config)
    sent = [0]
    lock = threading.Lock()

    def commit(worker: int) -> None:
        for n in range(worker, entries, committers):
            thread_id = f"bench-w{worker}-t{n % CHAT_THREADS}"
            mid = f"{config['run_id']}-{n}"
            with adapter.handle_message(("bench", mid), thread_id=thread_id, owner=mid) as msg:
                msg.send({"n": n})

    def drain(worker: int) -> None:
        deadline = time.monotonic() + PHASE_SECONDS
        while time.monotonic() < deadline:
            with lock:
                if sent[0] >= entries:
                    return
            got = adapter.dispatch_outbox(_deliver, limit=config["batch"])["sent"]
            with lock:
                sent[0] += got
            if not got:
                time.sleep(0.001)  # the rest is leased to the others

    try:
        commit_seconds = _in_threads(committers, commit)
        _analyze(config)
        dispatch_seconds = _in_threads(config["dispatchers"], drain)
        left = len(adapter.outbox())
    finally:
        if not keep:
            clear_namespace(config)
            _clear_outbox(config)
    return {
        "adapter": config["adapter"],
        "database_vendor": config["database_vendor"],
        "mode": "outbox",
        "entries": entries,
        "committers": committers,
        "dispatchers": config["dispatchers"],
        "batch": config["batch"],
        "commit_seconds": round(commit_seconds, 4),
        "commits_per_s": round(entries / commit_seconds, 1),
        "dispatch_seconds": round(dispatch_seconds, 4),
        "entries_per_s": round(sent[0] / dispatch_seconds, 1),
        "sent": sent[0],
        "left": left,
    }


def _analyze(config: Config) -> None:
    """PostgreSQL: fresh planner statistics of the outbox (as autovacuum keeps them), so
    that the claim is planned for the entries just committed, not for an empty table."""
    if config["database_vendor"] == "postgresql":
        from django.db import connections

        with connections[config["using"]].cursor() as cursor:
            cursor.execute("ANALYZE chatstate_outboxmessage")


def _clear_outbox(config: Config) -> None:
    """Remove what an interrupted run left in the namespace's outbox (database)."""
    if config["adapter"] == "database":
        from chatstate.models import OutboxMessage

        OutboxMessage.objects.using(config["using"]).filter(namespace=config["namespace"]).delete()


def _deliver(entry: Any) -> None:
    """The benchmark's sender: delivers nowhere, at once."""
