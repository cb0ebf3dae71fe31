"""Counting what a cycle sends, without touching chatstate's code paths.

Database: Django's own instrumentation (``connection.execute_wrapper``) plus the
connection's commits. Redis: a client of the benchmark's own whose connection class counts
what it sends (each send is one round trip), handed to a second adapter on the same alias.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from bench.cycles import Config, cycle_fn

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


def count_cycle(config: Config, adapter: Any) -> dict[str, int | None]:
    """Statements, commits and round trips of one warm cycle, run in this process."""
    spare = max(config["workers"], config["concurrency"])  # a thread set no worker uses
    run = cycle_fn(config, adapter, spare)
    run(-1_000_001)  # creates the thread's state row: the counted cycle is a warm one
    figures: dict[str, int | None] = {
        "statements_per_cycle": None,
        "commits_per_cycle": None,
        "write_commits_per_cycle": None,
        "round_trips_per_cycle": None,
    }
    if config["adapter"] == "database" and config["mode"] != "floor":
        with count_statements(config["using"]) as counts:
            run(-1_000_002)
        figures["statements_per_cycle"] = counts["statements"]
        figures["commits_per_cycle"] = counts["commits"]
        figures["write_commits_per_cycle"] = counts["write_commits"]
        figures["round_trips_per_cycle"] = counts["round_trips"]
    elif config["mode"] == "floor":
        # By construction: the cycle's two requests (two autocommit statements, both write).
        figures["round_trips_per_cycle"] = 2
        if config["adapter"] == "database":
            figures.update(statements_per_cycle=2, commits_per_cycle=2, write_commits_per_cycle=2)
    clustered = config["adapter"] == "redis" and not hasattr(adapter.connection, "connection_pool")
    if config["adapter"] == "redis" and config["mode"] != "floor" and not clustered:
        counted = counting_redis_adapter(config, adapter)
        run = cycle_fn(config, counted, spare)
        run(-1_000_003)
        CountingConnection.sent = 0
        run(-1_000_004)
        figures["round_trips_per_cycle"] = CountingConnection.sent
    return figures


def counting_redis_adapter(config: Config, adapter: Any) -> Any:
    """A Redis adapter like ``adapter`` whose client counts its round trips in
    :attr:`CountingConnection.sent`."""
    import redis

    from chatstate.adapters.redis import RedisStateAdapter

    class Counting(CountingConnection, redis.connection.Connection):
        pass

    kwargs = dict(adapter.connection.connection_pool.connection_kwargs)
    pool = redis.ConnectionPool(connection_class=Counting, **kwargs)
    client = redis.Redis(connection_pool=pool)
    return RedisStateAdapter(namespace=adapter.namespace, alias=adapter.alias, client=client)


class CountingConnection:
    """Mixed into a redis-py connection class: counts each send (one round trip)."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)  # type: ignore[misc]
