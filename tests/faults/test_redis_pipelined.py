"""The async Redis path's pipelined connection (``chatstate.adapters.redis.multiplex``):
every coroutine of an event loop on one connection, replies matched in order; a connection
cut with scripts in flight fails each of them (``BackendUnavailable``: none re-sent) and the
next script reconnects; a stalled server times out. Counted with the redelivery invariant:
every message's effect applied exactly once."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from chatstate.adapters.redis import RedisStateAdapter, scripts
from chatstate.adapters.redis.multiplex import Multiplexer
from tests import services
from tests.faults.proxy import FaultProxy
from tests.faults.redelivery import adeliver, tally

pytestmark = pytest.mark.run_on("postgresql")  # the Redis suite's run


@pytest.fixture
def proxied_redis() -> Iterator[tuple[RedisStateAdapter, RedisStateAdapter, FaultProxy]]:
    """A Redis adapter whose connections run through a fault proxy, and a plain twin."""
    host_port, db = services.REDIS_URL.split("//", 1)[1].rsplit("/", 1)
    host, port = host_port.rsplit(":", 1)
    proxy = FaultProxy(host, int(port))
    namespace = f"mux{os.getpid()}-{id(proxy)}"
    caches = {
        **settings.CACHES,
        "faulty": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{proxy.port}/{db}",
        },
    }
    plain = RedisStateAdapter(namespace=namespace, alias="chatstate")
    try:
        with override_settings(CACHES=caches):
            yield RedisStateAdapter(namespace=namespace, alias="faulty"), plain, proxy
    finally:
        proxy.close()
        plain.clear()


def test_a_loops_coroutines_share_one_connection(proxied_redis: Any) -> None:
    store, plain, proxy = proxied_redis
    threads = [f"t{i}" for i in range(20)]

    async def run() -> list[bool]:
        async def one(i: int) -> bool:
            async with store.ahandle_message(
                ("s", f"m{i}"), thread_id=threads[i % 20], owner=f"w{i}"
            ) as msg:
                msg.state["by"] = i
                return bool(msg.acquired)

        return await asyncio.gather(*(one(i) for i in range(20)))

    assert asyncio.run(run()) == [True] * 20
    assert proxy.accepted == 1  # 40 scripts of 20 coroutines, one connection
    assert [plain.thread_state(t) for t in threads] == [{"by": i} for i in range(20)]


def test_lost_replies_with_scripts_in_flight_neither_double_nor_lose(
    proxied_redis: Any, figures: Any
) -> None:
    """Replies lost (the connection cut after Redis ran a script) while the loop's other
    coroutines have scripts in flight on the same connection: all of them fail, none is
    re-sent, the redeliveries apply each message once."""
    store, plain, proxy = proxied_redis
    ids = [f"m{i}" for i in range(60)]
    patterns = [scripts.CYCLE_COMMIT.sha.encode(), scripts.CYCLE_ENTER.sha.encode()]

    async def run() -> list[dict[str, int]]:
        done = asyncio.Event()

        async def faults() -> None:
            for n in range(6):  # armed again after each lost reply, while messages remain
                proxy.arm(patterns[n % 2])
                while proxy.dropped <= n and not done.is_set():
                    await asyncio.sleep(0.005)
            proxy.disarm()

        async def deliveries() -> list[dict[str, int]]:
            met = await asyncio.gather(
                *(
                    adeliver(store, i, thread_id=f"t{n % 4}", ttl=1.0, pause=0.01)
                    for n, i in enumerate(ids)
                )
            )
            done.set()
            return list(met)

        met, _ = await asyncio.gather(deliveries(), faults())
        return met

    met = asyncio.run(run())
    seen = [i for t in range(4) for i in plain.thread_state(f"t{t}").get("seen", [])]
    counts = tally(seen, ids)
    unavailable = sum(m.get("unavailable", 0) for m in met)
    figures(faults=proxy.dropped, connections=proxy.accepted, unavailable=unavailable, **counts)
    assert proxy.dropped >= 1 and unavailable >= proxy.dropped
    assert proxy.accepted == proxy.dropped + 1  # one connection at a time, reopened after each
    assert counts == {"messages": 60, "applied": 60, "doubles": 0, "lost": 0}
    assert plain.snapshot().locks == {}


def test_a_silent_server_times_out() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, reads nothing, answers nothing
    port = silent.getsockname()[1]

    async def run() -> None:
        mux = await Multiplexer({"host": "127.0.0.1", "port": port, "socket_timeout": 0.2}).open()
        with pytest.raises(Exception) as caught:
            await mux.eval(scripts.IS_DUPLICATE, ["a", "b", "c"], ["m"])
        assert "within 0.2 s" in str(caught.value)
        assert mux.closed is not None

    try:
        asyncio.run(run())
    finally:
        silent.close()


def test_a_turns_commands_leave_in_a_few_writes_in_order() -> None:
    """64 commands sent in one turn of the loop leave in batches of about the square root
    of those in flight (not one write each, not all held to the turn's end), and every reply
    reaches its own command."""
    host_port, db = services.REDIS_URL.split("//", 1)[1].rsplit("/", 1)
    host, port = host_port.rsplit(":", 1)
    writes: list[int] = []

    async def run() -> list[Any]:
        mux = await Multiplexer({"host": host, "port": int(port), "db": int(db)}).open()
        assert mux.transport is not None
        write = mux.transport.write

        def counted(data: Any) -> None:
            writes.append(bytes(data).count(b"*2\r\n$4\r\nECHO"))
            write(data)

        mux.transport.write = counted  # type: ignore[method-assign]
        try:
            return await asyncio.gather(*(mux.send(("ECHO", f"e{i}")) for i in range(64)))
        finally:
            mux.abort(ConnectionError("done"))

    assert asyncio.run(run()) == [f"e{i}".encode() for i in range(64)]
    assert sum(writes) == 64
    assert 4 <= len(writes) <= 32, writes  # batches of 2 (at the start) to 8
