"""The floor of a cycle: the backend's bare driver sending exactly the cycle's two requests,
with no Django and no chatstate Python in between (``--mode floor``; ``raw`` is its old name).

- PostgreSQL: a plain psycopg connection in autocommit mode sending ``chatstate_enter`` and
  ``chatstate_commit``, prepared (what ``pgbench -M prepared`` sends with the same script);
- Redis: a plain redis-py client (hiredis) sending the two ``FCALL`` of the cycle, as the
  adapter does on Redis 7.

A floor only writes the state when the entry acquired, as the cycle does.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Config = dict[str, Any]

ENTER = (
    "SELECT * FROM chatstate_enter(%s::text, 'bench', %s::text, %s::bigint, %s::text, %s::text,"
    " 'reject', '{}'::jsonb, %s::float8, 0::float8, NULL::integer, 'drop_oldest')"
)
COMMIT = (
    "SELECT * FROM chatstate_commit(%s::text, %s::text, %s::text, %s::jsonb, %s::bigint, true,"
    " true, NULL::float8, NULL::jsonb, false, %s::tid, %s::tid, %s::tid)"
)


def floor_fn(
    config: Config, adapter: Any, threads: list[str], owner: str, prefix: str
) -> Callable[[int], None]:
    """Cycle ``i`` on the bare driver of ``config``'s backend."""
    if config["adapter"] == "redis":
        return _redis_floor(config, adapter, threads, owner, prefix)
    import psycopg

    conn = psycopg.connect(**config["psycopg"], autocommit=True)
    cursor = conn.cursor()
    ns, limit, ttl = config["namespace"], config["dedupe_limit"], adapter.lock_ttl
    n_threads = len(threads)

    def run(i: int) -> None:
        thread, message = threads[i % n_threads], f"{prefix}{i}"
        cursor.execute(ENTER, (ns, message, limit, thread, owner, ttl), prepare=True)
        params = commit_params(cursor.fetchone(), ns, thread, owner)
        if params:
            cursor.execute(COMMIT, params, prepare=True)
            released(cursor.fetchone(), thread)

    return run


def commit_params(row: Any, ns: str, thread: str, owner: str) -> tuple[Any, ...] | None:
    """``chatstate_commit``'s parameters after the ``chatstate_enter`` reply ``row``, its
    state counted up; None unless the entry claimed the message and took the thread."""
    claimed, result, state, claim_id = row[0], row[2], row[3], row[9]
    if not (claimed and result == "acquired"):
        return None
    state = json.loads(state) if isinstance(state, str) else (state or {})
    state["n"] = state.get("n", 0) + 1
    # row[10:]: where the claim, the lock and the state lie
    return (ns, thread, owner, json.dumps(state), claim_id, *row[10:])


def released(row: Any, thread: str) -> None:
    """An error unless the ``chatstate_commit`` reply ``row`` says the lock was released."""
    if not row[0]:
        raise RuntimeError(f"floor cycle lost the lock {thread!r}")


def async_floor_fn(
    config: Config, adapter: Any, threads: list[str], owner: str, prefix: str
) -> Callable[[int], Awaitable[None]]:
    """:func:`floor_fn` on the backend's asyncio driver (one connection per coroutine)."""
    n_threads = len(threads)
    if config["adapter"] == "redis":
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(config["redis_url"])
        enter, commit = _redis_requests(adapter)
        _load_functions(redis.Redis.from_url(config["redis_url"]))

        async def run_redis(i: int) -> None:
            thread, member = threads[i % n_threads], f"bench\x00{prefix}{i}"
            reply = await client.fcall(*enter(member, thread, owner))
            state = held_state(reply)
            state["n"] = state.get("n", 0) + 1
            committed(await client.fcall(*commit(member, thread, owner, json.dumps(state))))

        return run_redis
    import psycopg

    ns, limit, ttl = config["namespace"], config["dedupe_limit"], adapter.lock_ttl
    connection: list[Any] = []

    async def run_pg(i: int) -> None:
        if not connection:
            connection.append(
                await psycopg.AsyncConnection.connect(**config["psycopg"], autocommit=True)
            )
        cursor = connection[0].cursor()
        thread, message = threads[i % n_threads], f"{prefix}{i}"
        await cursor.execute(ENTER, (ns, message, limit, thread, owner, ttl), prepare=True)
        params = commit_params(await cursor.fetchone(), ns, thread, owner)
        if params:
            await cursor.execute(COMMIT, params, prepare=True)
            released(await cursor.fetchone(), thread)

    return run_pg


def held_state(reply: Any) -> dict[str, Any]:
    """The thread's state in a ``cycle_enter`` reply; an error unless the thread is held.

    A floor's threads are its own: every message must take its thread."""
    if isinstance(reply, (bytes, str)):  # the short reply: acquired, nothing else to say
        text = reply[2:]
    elif int(reply[0]) and reply[2] in (b"acquired", "acquired"):
        text = reply[3]
    else:
        raise RuntimeError(f"floor cycle did not take its thread: {reply!r}")
    return json.loads(text) if text else {}


def committed(reply: Any) -> None:
    """An error unless a ``cycle_commit`` reply says released, nothing handed over."""
    if reply != 1:
        raise RuntimeError(f"floor cycle's commit was refused: {reply!r}")


def _redis_requests(adapter: Any) -> tuple[Callable[..., tuple[Any, ...]], Callable[..., Any]]:
    """Builders of the cycle's two ``FCALL`` argument lists for ``adapter``'s namespace."""
    from chatstate.adapters.redis import scripts

    k = adapter.keys
    limit, ttl = adapter.dedupe_limit, max(1, round(adapter.lock_ttl * 1000))

    def enter(member: str, thread: str, owner: str) -> tuple[Any, ...]:
        keys = [k.dd, k.ddseq, k.ddc, k.ddt, k.subs, k.ts, *k.queue(thread)]
        args = [member, limit, thread, owner, "reject", "{}", ttl, 0, "", "drop_oldest"]
        return (scripts.CYCLE_ENTER.function, len(keys), *keys, *args)

    def commit(member: str, thread: str, owner: str, state: str) -> tuple[Any, ...]:
        keys = [*k.lock(thread), k.ts, k.dd, k.ddc, k.tt]
        args = [thread, owner, state, member, "1", "", "1"]  # the lock; the claim marked done
        return (scripts.CYCLE_COMMIT.function, len(keys), *keys, *args)

    return enter, commit


def _redis_floor(
    config: Config, adapter: Any, threads: list[str], owner: str, prefix: str
) -> Callable[[int], None]:
    import redis

    client = redis.Redis.from_url(config["redis_url"])
    _load_functions(client)
    enter, commit = _redis_requests(adapter)
    n_threads = len(threads)

    def run(i: int) -> None:
        thread, member = threads[i % n_threads], f"bench\x00{prefix}{i}"
        reply = client.fcall(*enter(member, thread, owner))
        state = held_state(reply)
        state["n"] = state.get("n", 0) + 1
        committed(client.fcall(*commit(member, thread, owner, json.dumps(state))))

    return run


def _load_functions(client: Any) -> None:
    """Load the cycle's two scripts as function libraries on ``client``'s server."""
    from chatstate.adapters.redis import scripts

    for script in (scripts.CYCLE_ENTER, scripts.CYCLE_COMMIT):
        client.function_load(script.library, replace=True)
