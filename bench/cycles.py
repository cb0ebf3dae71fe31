"""One benchmark cycle, run three ways (``mode``), and the adapter it runs on.

* ``cycle`` — through ``handle_message`` (the public API a webhook view uses), or with
  ``--async`` ``ahandle_message``; with ``--effects`` each cycle also stages a channel
  counter increment and a history append (the unit of work);
* ``primitives`` — the six public calls one by one (``claim_dedupe``, ``is_subscribed``,
  ``lock``, ``thread_state``, ``put_thread_state``, ``release_lock``);
* ``floor`` — the backend's bare driver sending what the cycle sends (:mod:`.floors`): the
  floor the cycle is measured against.

Each worker uses its own threads (round robin) and unique message ids, so the cycles are
uncontended on the lock and the figures show the cost of the cycle itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
Config = dict[str, Any]
THREADS_PER_WORKER = 100
ADAPTERS = ("memory", "database", "redis")


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


def namespaces(config: Config) -> list[str]:
    """The run's namespaces: its own, or ``<its own>-<k>`` for each of ``namespaces`` > 1."""
    n, base = config.get("namespaces", 1), config["namespace"]
    return [base] if n == 1 else [f"{base}-{k}" for k in range(n)]


def make_adapters(config: Config) -> list[Any]:
    """An adapter per namespace of the run (see :func:`namespaces`)."""
    return [make_adapter({**config, "namespace": ns}) for ns in namespaces(config)]


def spread(runs: list[Callable[[int], T]]) -> Callable[[int], T]:
    """Cycle ``i`` on namespace ``i % len(runs)``: one function running it."""
    if len(runs) == 1:
        return runs[0]
    count = len(runs)

    def run(i: int) -> T:
        return runs[i % count](i)

    return run


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
        effects = config.get("effects", False)
        channel = f"bench-w{worker}-c" if effects else None

        def run_cycle(i: int) -> None:
            with adapter.handle_message(
                ("bench", f"{prefix}{i}"),
                thread_id=threads[i % n_threads],
                owner=owner,
                dedupe_limit=limit,
                channel_id=channel,
            ) as msg:
                if msg.acquired:
                    msg.state["n"] = msg.state.get("n", 0) + 1
                    if effects:
                        stage_effects(msg, i)

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

    from bench import floors

    return floors.floor_fn(config, adapter, threads, owner, prefix)


def async_cycle_fn(config: Config, adapter: Any, worker: int) -> Callable[[int], Awaitable[None]]:
    """The coroutine function running cycle ``i`` of ``worker`` (``--async``)."""
    threads = thread_ids(worker)
    owner = f"bench-worker-{worker}"
    limit = config["dedupe_limit"]
    prefix = f"w{worker}-{config['run_id']}-m"
    n_threads = len(threads)
    if config["mode"] == "floor":
        from bench import floors

        return floors.async_floor_fn(config, adapter, threads, owner, prefix)

    effects = config.get("effects", False)
    channel = f"bench-w{worker}-c" if effects else None

    async def run_cycle(i: int) -> None:
        async with adapter.ahandle_message(
            ("bench", f"{prefix}{i}"),
            thread_id=threads[i % n_threads],
            owner=owner,
            dedupe_limit=limit,
            channel_id=channel,
        ) as msg:
            if msg.acquired:
                msg.state["n"] = msg.state.get("n", 0) + 1
                if effects:
                    stage_effects(msg, i)

    return run_cycle


def stage_effects(msg: Any, i: int) -> None:
    """``--effects``: what a bot's message typically stages besides its state: a channel
    counter and a history item (the worker's own channel: uncontended, as its threads)."""
    msg.channel.incr("messages")
    msg.history.append({"role": "user", "n": i})
