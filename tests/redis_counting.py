"""Counting what the Redis adapter sends: a real connection class that records each send
(each send is one round trip), on a pool given to the adapter."""

from __future__ import annotations

from typing import Any

import redis


class CountingConnection(redis.connection.Connection):  # type: ignore[misc]
    """A real connection that counts what it sends: each send is one round trip."""

    sent: list[bytes] = []

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        first = command[0] if isinstance(command, list) else command
        CountingConnection.sent.append(bytes(first)[:40])
        super().send_packed_command(command, check_health)


def counting(adapter: Any) -> list[bytes]:
    """Give the Redis ``adapter`` a client whose connections count their sends; the list
    they fill."""
    kwargs = dict(adapter.connection.connection_pool.connection_kwargs)
    pool = redis.ConnectionPool(connection_class=CountingConnection, **kwargs)
    adapter._client = redis.Redis(connection_pool=pool)
    CountingConnection.sent = []
    return CountingConnection.sent


def round_trips(sent: list[bytes], fn: Any, *args: Any, **kwargs: Any) -> int:
    """How many sends ``fn(*args, **kwargs)`` adds to ``sent``."""
    before = len(sent)
    fn(*args, **kwargs)
    return len(sent) - before
