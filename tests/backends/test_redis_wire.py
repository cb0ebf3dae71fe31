"""The blocking scripts' own socket (``chatstate.adapters.redis.wire``): which pools use it,
and what it does with each setting it accepts, against real Redis servers.

The conformance suite and the fault tests (a restarted server, replies lost mid-cycle) run
the Redis adapter on it already; these tests cover the settings they do not use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import threading
from pathlib import Path

import pytest
import redis

from chatstate import BackendUnavailable, LockResult
from chatstate.adapters.redis import RedisStateAdapter, scripts
from chatstate.adapters.redis import connection as redis_connection
from chatstate.adapters.redis.multiplex import Multiplexer
from chatstate.adapters.redis.wire import PinnedConnection, Wire, keepalive_options, supports
from tests import services
from tests.faults.redis_server import RedisServer

pytestmark = pytest.mark.needs_kind("redis")


def _test_server() -> tuple[str, int, int]:
    host_port, db = services.REDIS_URL.split("//", 1)[1].rsplit("/", 1)
    host, port = host_port.rsplit(":", 1)
    return host, int(port), int(db)


def test_a_plain_pool_runs_its_scripts_on_a_wire_and_others_on_redis_py() -> None:
    host, port, db = _test_server()
    plain = redis.ConnectionPool(host=host, port=port, db=db)
    resp3 = redis.ConnectionPool(host=host, port=port, db=db, protocol=3)
    assert supports(plain.connection_class, plain.connection_kwargs)
    assert not supports(resp3.connection_class, resp3.connection_kwargs)
    for pool, on_wire in ((plain, True), (resp3, False)):
        client = redis.Redis(connection_pool=pool)
        key = f"wire-probe-{os.getpid()}-{on_wire}"
        probe = scripts.LuaScript("probe", f"-- {key}\nreturn redis.call('INCR', KEYS[1])")
        try:
            assert redis_connection.eval_pinned(client, probe, [key], []) == 1
            assert redis_connection.eval_pinned(client, probe, [key], []) == 2
            pinned, _ = redis_connection._pinned.connections[pool]
            assert (pinned.wire is not None, pinned.redis is None) == (on_wire, on_wire)
        finally:
            client.delete(key)
            pool.disconnect()


def test_the_wire_selects_the_database_and_decodes_replies_when_asked() -> None:
    host, port, db = _test_server()
    wire = Wire({"host": host, "port": port, "db": db, "decode_responses": True})
    try:
        assert f" db={db} " in wire.call(("CLIENT", "INFO"))
        assert wire.call(("ECHO", "é")) == "é"
    finally:
        wire.close()
    raw = Wire({"host": host, "port": port})
    try:
        assert raw.call(("ECHO", "é")) == "é".encode()
    finally:
        raw.close()


def test_a_client_with_redis_pys_defaults_runs_the_cycle_on_a_wire_with_its_keepalive() -> None:
    # redis-py 8's Redis() passes a sentinel for "no keepalive options given", which its own
    # connections turn into its defaults: the wire must set what they would set
    host, port, db = _test_server()
    client = redis.Redis(host=host, port=port, db=db)
    pool = client.connection_pool
    expected = dict(keepalive_options(pool.connection_kwargs))
    store = RedisStateAdapter(namespace=f"wire-defaults-{os.getpid()}", client=client)
    try:
        with store.handle_message(("wire", "m1"), thread_id="t1", owner="o") as msg:
            assert msg.acquired
            msg.state["n"] = 1
        assert store.thread_state("t1") == {"n": 1}
        pinned, _ = redis_connection._pinned.connections[pool]
        assert pinned.wire is not None
        sock = pinned.wire.sock
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == bool(
            pool.connection_kwargs.get("socket_keepalive")
        )
        for option, value in expected.items():
            assert sock.getsockopt(socket.IPPROTO_TCP, option) == value
    finally:
        store.clear()
        pool.disconnect()


def test_a_refused_login_is_a_connection_error_naming_the_refusal() -> None:
    host, port, _ = _test_server()
    with pytest.raises(redis.ConnectionError, match="refused the connection's setup"):
        Wire({"host": host, "port": port, "username": "nobody-here", "password": "wrong"})


def test_a_reply_error_leaves_the_wire_usable() -> None:
    host, port, _ = _test_server()
    wire = Wire({"host": host, "port": port})
    try:
        with pytest.raises(redis.ResponseError, match="unknown command"):
            wire.call(("NO-SUCH-COMMAND",))
        with pytest.raises(redis.exceptions.NoScriptError):
            wire.call(("EVALSHA", "0" * 40, 0))
        assert wire.call(("PING",)) == b"PONG"
    finally:
        wire.close()


def test_a_silent_server_times_out_and_closes_the_wire() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, reads nothing, answers nothing
    try:
        wire = Wire({"host": "127.0.0.1", "port": silent.getsockname()[1], "socket_timeout": 0.2})
        with pytest.raises(redis.TimeoutError, match="no reply from Redis in time"):
            wire.call(("PING",))
        assert wire.sock.fileno() == -1
    finally:
        silent.close()


def test_a_wire_the_server_hung_up_is_stale_and_replaced_before_use() -> None:
    host, port, db = _test_server()
    pool = redis.ConnectionPool(host=host, port=port, db=db)
    pinned = PinnedConnection.open(pool)
    try:
        assert pinned.call(("PING",)) == b"PONG" and not pinned.stale()
        client_id = pinned.call(("CLIENT", "ID"))
        redis.Redis(connection_pool=pool).client_kill_filter(_id=client_id)
        assert pinned.stale()
        pinned.drop()
        assert pinned.call(("CLIENT", "ID")) != client_id
    finally:
        pinned.drop()
        pool.disconnect()


def test_the_adapter_runs_on_a_unix_socket_wire() -> None:
    path = Path(tempfile.mkdtemp(prefix="chatstate-wire-")) / "redis.sock"
    server = RedisServer("--unixsocket", str(path), "--unixsocketperm", "700")
    try:
        from django.test import override_settings

        caches = {
            "unix": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": f"unix://{path}?db=0",
            }
        }
        with override_settings(CACHES=caches):
            store = RedisStateAdapter(namespace="wire-unix", alias="unix")
            pool = store.connection.connection_pool
            assert supports(pool.connection_class, pool.connection_kwargs)
            with store.handle_message(("s", "m1"), thread_id="t", owner="w") as msg:
                assert msg.acquired
                msg.state["n"] = 1
            assert store.thread_state("t") == {"n": 1}
            assert store.lock("t", "w") is LockResult.ACQUIRED
            pinned, _ = redis_connection._pinned.connections[pool]
            assert pinned.wire is not None and pinned.wire.sock.family == socket.AF_UNIX
    finally:
        server.close()


def test_a_server_not_there_is_a_connection_error_naming_its_address() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(redis.ConnectionError, match=f"at 127.0.0.1:{port} failed"):
        Wire({"host": "127.0.0.1", "port": port})


def test_both_of_chatstates_connections_carry_the_client_name() -> None:
    host, port, db = _test_server()
    kwargs = {"host": host, "port": port, "db": db, "client_name": "chatstate-wire-test"}
    wire = Wire(kwargs)
    try:
        assert wire.call(("CLIENT", "GETNAME")) == b"chatstate-wire-test"
    finally:
        wire.close()

    async def run() -> bytes:
        mux = await Multiplexer(kwargs).open()
        try:
            name: bytes = await mux.send(("CLIENT", "GETNAME"))
            return name
        finally:
            mux.abort(redis.ConnectionError("done"))

    assert asyncio.run(run()) == b"chatstate-wire-test"


def _loading_server() -> tuple[socket.socket, threading.Thread]:
    """A server that answers every command as a Redis still loading its data does."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                with conn:
                    while conn.recv(65536):
                        conn.sendall(b"-LOADING Redis is loading the dataset in memory\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_a_server_still_loading_its_data_is_unavailable_on_both_connections() -> None:
    # a restarted server answers LOADING until its data is back: the script did not run,
    # and redis-py calls that a connection error; so must the wire and the multiplexer
    listener, _ = _loading_server()
    port = listener.getsockname()[1]
    try:
        wire = Wire({"host": "127.0.0.1", "port": port})
        with pytest.raises(redis.BusyLoadingError):
            wire.call(("PING",))
        wire.close()
        store = RedisStateAdapter(
            namespace="wire-loading", client=redis.Redis(host="127.0.0.1", port=port)
        )
        with (
            pytest.raises(BackendUnavailable, match="loading"),
            store.handle_message(("s", "m1"), thread_id="t", owner="w"),
        ):
            pass

        async def run() -> None:
            mux = await Multiplexer({"host": "127.0.0.1", "port": port}).open()
            try:
                with pytest.raises(redis.BusyLoadingError):
                    await mux.send(("PING",))
            finally:
                mux.abort(redis.ConnectionError("done"))

        asyncio.run(run())
    finally:
        listener.close()
