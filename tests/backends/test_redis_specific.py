"""What only the Redis adapter has: its key layout, its round trips, its errors and checks.

The behaviour every adapter shares is the conformance suite's (chatstate/testing, where the
``redis`` store joins the PostgreSQL run). These tests talk to the real Redis of the test
settings (``CACHES["chatstate"]``); the round-trip counts come from a connection class
that counts what it sends (each send is one round trip), on a pool given to the adapter.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core import checks
from django.test import override_settings

from chatstate import LockResult
from chatstate.adapters.redis import RedisStateAdapter, scripts
from chatstate.adapters.redis import connection as redis_connection
from chatstate.adapters.redis.connection import async_client_for
from chatstate.adapters.redis.keys import namespace_prefix
from chatstate.snapshots.sections import SnapshotSections
from chatstate.types import BackendUnavailable
from tests import services
from tests.redis_counting import counting, round_trips

pytestmark = pytest.mark.needs_kind("redis")


ALIAS = "chatstate"
_names = itertools.count(1)


def _namespace() -> str:
    return f"rs{os.getpid()}-{next(_names)}"


@pytest.fixture
def make() -> Iterator[Any]:
    """Build Redis adapters on the test alias; their namespaces are cleared afterwards."""
    made: list[RedisStateAdapter] = []

    def build(namespace: str | None = None) -> RedisStateAdapter:
        adapter = RedisStateAdapter(namespace=namespace or _namespace(), alias=ALIAS)
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        adapter.clear()


@pytest.fixture
def rstore(make: Any) -> RedisStateAdapter:
    return make()  # type: ignore[no-any-return]


HANDSHAKE = frozenset({"HELLO", "AUTH", "SELECT", "CLIENT", "PING"})


class CountingAsyncConnection(redis.asyncio.Connection):  # type: ignore[misc]
    """The async counterpart; records each command's name (but the connection's handshake)
    and the thread that sent it."""

    sent: list[str] = []
    threads: set[int] = set()

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        first = bytes(command[0] if isinstance(command, list) else command)
        name = first.split(b"\r\n")[2].decode().upper()
        if name not in HANDSHAKE:
            CountingAsyncConnection.sent.append(name)
        CountingAsyncConnection.threads.add(threading.get_ident())
        await super().send_packed_command(command, check_health)


def _keys_under(adapter: RedisStateAdapter) -> dict[str, str]:
    conn = adapter.connection
    prefix = adapter.keys.prefix
    return {
        key.decode()[len(prefix) :]: conn.type(key).decode()
        for key in conn.scan_iter(match=prefix.replace("\\", "\\\\") + "*", count=1000)
    }


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _caches(**aliases: dict[str, Any]) -> dict[str, Any]:
    return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}, **aliases}


# -- key layout ------------------------------------------------------------------------


def test_every_key_lives_under_the_namespace_prefix_with_its_documented_type(
    rstore: RedisStateAdapter,
) -> None:
    assert rstore.keys.prefix == f"chatstate:{{{rstore.namespace}}}:"
    rstore.subscribe("t1")
    rstore.claim_dedupe(("slack", "m1"), 10)
    rstore.put_thread_state("t1", {"n": 1})
    rstore.put_channel_state("c1", {"topic": "x"})
    assert rstore.lock("t1", "w1") is LockResult.ACQUIRED
    assert rstore.lock("t1", "w2", "queue") is LockResult.QUEUED

    assert _keys_under(rstore) == {
        "subs": "set",
        "subt": "zset",
        "dd": "zset",
        "ddseq": "string",
        "ddt": "hash",
        "ts": "hash",
        "tt": "zset",
        "cs": "hash",
        "ct": "zset",
        "locks": "hash",
        "q:t1": "list",
        "qkeys": "set",
        "qseq": "string",
    }
    conn = rstore.connection
    found = {k.decode() for k in conn.scan_iter(match=f"*{rstore.namespace}*", count=1000)}
    assert found and all(k.startswith(rstore.keys.prefix) for k in found)
    # The dedupe window is a sorted set scored by the namespace's counter.
    assert conn.zrange(rstore.keys.dd, 0, -1, withscores=True) == [(b"slack\x00m1", 1.0)]

    rstore.release_lock("t1", "w1")
    assert "q:t1" not in _keys_under(rstore) and "qkeys" not in _keys_under(rstore)


def test_the_dedupe_window_is_trimmed_in_the_claiming_script(rstore: RedisStateAdapter) -> None:
    for i in range(5):
        assert rstore.claim_dedupe(("a", str(i)), 3)
    assert rstore.connection.zcard(rstore.keys.dd) == 3
    assert rstore.snapshot().dedupe_order == [("a", "2"), ("a", "3"), ("a", "4")]


def test_a_namespace_prefix_is_never_a_prefix_of_another_namespaces(make: Any) -> None:
    base = _namespace()
    plain = make(base)
    tricky = make(base + "}:locks")  # unescaped, its keys would start with plain's prefix
    assert tricky.keys.prefix == f"chatstate:{{{base}\\}}:locks}}:"
    assert not tricky.keys.prefix.startswith(plain.keys.prefix)
    assert namespace_prefix("a\\}") == "chatstate:{a\\\\\\}}:"
    for adapter in (plain, tricky):
        adapter.subscribe("t")
        adapter.lock("k", "w")
    plain.clear()
    assert not plain.is_subscribed("t")
    assert tricky.is_subscribed("t") and tricky.snapshot().locks["k"]["owner"] == "w"


def test_clear_removes_exactly_the_namespace(make: Any) -> None:
    mine, other = make(), make()
    for adapter in (mine, other):
        adapter.subscribe("t")
        adapter.lock("k", "w")
        adapter.lock("k", "v", "queue")
    assert mine.clear() == 6  # subs, subt, locks, q:k, qkeys, qseq
    assert _keys_under(mine) == {}
    assert len(_keys_under(other)) == 6


# -- round trips -----------------------------------------------------------------------


def test_round_trips_per_operation(rstore: RedisStateAdapter) -> None:
    rstore.claim_dedupe(("warm", "up"))  # loads the scripts' shared text once per server
    client = counting(rstore)
    for name, fn, args, expected in [
        ("subscribe", rstore.subscribe, ("t",), 1),
        ("is_subscribed", rstore.is_subscribed, ("t",), 1),
        ("put_thread_state", rstore.put_thread_state, ("t", {"n": 1}), 1),
        ("thread_state", rstore.thread_state, ("t",), 1),
        ("update_thread_state", rstore.update_thread_state, ("t", lambda s: {"n": 2}), 2),
        ("is_duplicate", rstore.is_duplicate, (("a", "1"),), 1),
        ("claim_dedupe", rstore.claim_dedupe, (("a", "1"),), 1),
        ("mark_dedupe", rstore.mark_dedupe, (("a", "2"),), 1),
        ("lock", rstore.lock, ("k", "w"), 1),
        ("lock (queue)", rstore.lock, ("k", "v", "queue"), 1),
        ("extend_lock", rstore.extend_lock, ("k", "w", 30), 1),
        ("release_lock", rstore.release_lock, ("k", "w"), 1),
        ("force_release_lock", rstore.force_release_lock, ("k",), 1),
        ("prune", rstore.prune, (), 1),
        ("append_to_list", rstore.append_to_list, ("k", {"n": 1}), 1),
        ("get_list", rstore.get_list, ("k",), 1),
        ("history", rstore.history, ("t", 5), 1),
        ("delete_list", rstore.delete_list, ("k",), 1),
        ("outbox", rstore.outbox, (), 1),
        ("dispatch_outbox (nothing due)", rstore.dispatch_outbox, (lambda entry: None,), 1),
        ("requeue_outbox", rstore.requeue_outbox, (["1"],), 1),
        ("discard_outbox", rstore.discard_outbox, (["1"],), 1),
    ]:
        # Scripts not called before cost a load once: call each one twice.
        fn(*args)
        if name in ("claim_dedupe", "mark_dedupe"):
            args = ((args[0][0], args[0][1] + "x"),)
        if name == "release_lock":
            rstore.lock("k", "w")
        assert round_trips(client, fn, *args) == expected, name


def test_the_message_cycle_costs_two_round_trips(rstore: RedisStateAdapter) -> None:
    client = counting(rstore)
    with rstore.handle_message(("s", "warm"), thread_id="t", owner="w") as msg:
        msg.state["n"] = 0

    def cycle(message_id: str) -> None:
        with rstore.handle_message(("s", message_id), thread_id="t", owner="w") as msg:
            assert msg.acquired
            msg.state["n"] += 1

    assert round_trips(client, cycle, "m1") == 2
    assert all(b"FCALL" in line for line in client[-2:])
    assert rstore.thread_state("t") == {"n": 1}

    def duplicate() -> None:
        with rstore.handle_message(("s", "m1"), thread_id="t", owner="w") as msg:
            assert msg.duplicate

    assert round_trips(client, duplicate) == 1

    def failing() -> None:
        with (
            pytest.raises(RuntimeError),
            rstore.handle_message(("s", "m2"), thread_id="t", owner="w") as msg,
        ):
            msg.state["n"] = 99
            raise RuntimeError("handler failed")

    failing()  # loads the abort script
    rstore.claim_dedupe(("s", "spare"))
    assert round_trips(client, failing) == 2  # enter, then abort in one script
    assert rstore.thread_state("t") == {"n": 1} and not rstore.is_duplicate(("s", "m2"))


def test_a_dispatch_costs_one_claim_and_one_step_per_entry(rstore: RedisStateAdapter) -> None:
    for n in range(4):
        with rstore.handle_message(("s", f"m{n}"), thread_id=f"t{n % 2}", owner="w") as msg:
            msg.send({"n": n})
    rstore.dispatch_outbox(lambda entry: None, limit=1)  # loads the scripts
    client = counting(rstore)
    assert len(rstore.outbox()) == 3  # opens the counting connection
    assert round_trips(client, rstore.dispatch_outbox, lambda entry: None) == 1 + 3
    assert rstore.outbox() == []


def test_a_connection_the_server_closed_is_replaced_before_use(
    rstore: RedisStateAdapter,
) -> None:
    assert rstore.lock("k", "w") is LockResult.ACQUIRED
    pinned, _ = redis_connection._pinned.connections[rstore.connection.connection_pool]
    client_id = pinned.call(("CLIENT", "ID"))
    assert rstore.connection.client_kill_filter(_id=client_id) == 1
    assert rstore.lock("k", "v") is LockResult.BUSY  # not BackendUnavailable
    assert rstore.release_lock("k", "w") == []


def test_async_twins_use_redis_asyncio_on_the_event_loop_thread(
    rstore: RedisStateAdapter,
) -> None:
    rstore.subscribe("t")
    with rstore.handle_message(("s", "warm"), thread_id="t", owner="w"):
        pass

    async def run() -> int:
        template = async_client_for(rstore.connection).connection_pool
        pool = redis.asyncio.ConnectionPool(
            connection_class=CountingAsyncConnection, **template.connection_kwargs
        )
        rstore._async_clients[asyncio.get_running_loop()] = redis.asyncio.Redis(
            connection_pool=pool
        )
        CountingAsyncConnection.sent, CountingAsyncConnection.threads = [], set()
        async with rstore.ahandle_message(("s", "m1"), thread_id="t", owner="w") as msg:
            assert msg.acquired and msg.subscribed
            msg.state["n"] = 1
        assert await rstore.athread_state("t") == {"n": 1}
        await pool.disconnect()
        return threading.get_ident()

    loop_thread = asyncio.run(run())
    assert CountingAsyncConnection.sent == ["FCALL", "FCALL", "HGET"]
    assert CountingAsyncConnection.threads == {loop_thread}


def test_the_async_client_has_the_sync_pools_connection_settings(
    rstore: RedisStateAdapter,
) -> None:
    sync_kwargs = rstore.connection.connection_pool.connection_kwargs
    client = async_client_for(rstore.connection)
    kwargs = client.connection_pool.connection_kwargs
    for name in ("host", "port", "db", "password", "socket_timeout"):
        assert kwargs.get(name) == sync_kwargs.get(name), name
    # the database of the run's URL (CHATSTATE_REDIS_URL), not the pool's default 0
    assert kwargs["db"] == redis.connection.parse_url(services.REDIS_URL).get("db", 0)


def test_a_pool_without_an_async_counterpart_still_serves_the_async_twins(
    rstore: RedisStateAdapter,
) -> None:
    class CustomConnection(redis.connection.Connection):  # type: ignore[misc]
        pass

    kwargs = dict(rstore.connection.connection_pool.connection_kwargs)
    pool = redis.ConnectionPool(connection_class=CustomConnection, **kwargs)
    rstore._client = redis.Redis(connection_pool=pool)
    assert async_client_for(rstore.connection) is None

    async def run() -> bool:
        await rstore.asubscribe("t")
        return await rstore.ais_subscribed("t")

    assert asyncio.run(run())
    pool.disconnect()


def test_scripts_are_reloaded_after_the_server_forgets_them(rstore: RedisStateAdapter) -> None:
    assert rstore.lock("k", "w") is LockResult.ACQUIRED
    rstore.connection.function_delete(scripts.LOCK.function)
    assert rstore.lock("k", "v") is LockResult.BUSY
    assert rstore.connection.function_list(library=scripts.LOCK.function)


def test_every_script_loads_as_a_function_library(rstore: RedisStateAdapter) -> None:
    for script in scripts.ALL:
        loaded = rstore.connection.function_load(script.library, replace=True)
        assert loaded == script.function.encode()
    assert rstore.lock("k", "w") is LockResult.ACQUIRED


@pytest.mark.parametrize("refused", ["-fcall", "-function"])
@pytest.mark.parametrize("login", ["password", "credential_provider"])
def test_a_user_without_functions_gets_the_scripts_by_sha(
    rstore: RedisStateAdapter, refused: str, login: str
) -> None:
    """An ACL refusing ``FCALL``, or ``FUNCTION LOAD``: each driver calls the scripts by
    SHA instead, and runs each once. A credential provider takes the async lanes."""
    admin, user = rstore.connection, f"chatstate-no-functions-{os.getpid()}"
    admin.acl_setuser(
        user, enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
        commands=["+@all", refused],
    )  # fmt: skip
    kwargs = dict(admin.connection_pool.connection_kwargs)
    if login == "password":
        kwargs.update(username=user, password="pw")
    else:
        kwargs["credential_provider"] = redis.UsernamePasswordCredentialProvider(user, "pw")
    pool = redis.ConnectionPool(**kwargs)
    rstore._client = client = redis.Redis(connection_pool=pool)
    # a script of this test's own: no other test has loaded it as a function
    counter = f"{rstore.keys.prefix}probe"
    probe = scripts.LuaScript("probe", f"-- {counter}\nreturn redis.call('INCR', KEYS[1])")
    try:
        assert redis_connection.eval_pinned(client, probe, [counter], []) == 1
        assert redis_connection._pinned.connections[pool][1].functions is False

        async def run() -> tuple[int, LockResult]:
            runner = redis_connection._script_runner(async_client_for(client).connection_pool)
            count = await runner.eval(probe, [counter], [])
            mux = getattr(runner, "mux", None)
            assert (mux or runner).calls.functions is False
            return count, await rstore.alock("k", "v")

        assert rstore.lock("k", "w") is LockResult.ACQUIRED
        assert asyncio.run(run()) == (2, LockResult.BUSY)
        with rstore.handle_message(("s", "m1"), thread_id="t", owner="x") as msg:
            msg.state["n"] = 1
            msg.history.append("once")
        assert (rstore.thread_state("t"), rstore.history("t")) == ({"n": 1}, ["once"])
    finally:
        rstore._client = admin
        admin.delete(counter)
        pool.disconnect()
        admin.acl_deluser(user)


# -- snapshots -------------------------------------------------------------------------


def test_a_load_leaves_no_temporary_keys_and_no_expiry(rstore: RedisStateAdapter) -> None:
    rstore.subscribe("old")
    source = RedisStateAdapter(namespace=_namespace(), alias=ALIAS)
    try:
        source.subscribe("t")
        source.claim_dedupe(("a", "1"))
        source.put_thread_state("t", {"n": 1})
        source.lock("k", "w")
        source.lock("k", "v", "queue")
        snap = source.snapshot()
    finally:
        source.clear()
    rstore.load_snapshot(snap)
    assert rstore.snapshot() == snap
    layout = _keys_under(rstore)
    assert not [k for k in layout if k.startswith("tmp:")]
    conn = rstore.connection
    assert all(conn.pttl(rstore.keys.prefix + k) == -1 for k in layout)
    rstore.load_snapshot({"subscriptions": ["m"]}, merge=True)
    assert rstore.snapshot().subscriptions == {"t", "m"}
    assert not [k for k in _keys_under(rstore) if k.startswith("tmp:")]


def test_a_failed_load_removes_what_it_built(rstore: RedisStateAdapter) -> None:
    rstore.subscribe("keep")
    before = rstore.snapshot()

    def breaking() -> Any:  # the pending section fails after the others were built
        yield ("k", [{"owner": "w", "strategy": "queue", "metadata": {}}])
        raise RuntimeError("load failed midway")

    sections = SnapshotSections(
        subscriptions=[f"s{i}" for i in range(50)],
        dedupe_order=[("s", f"m{i}") for i in range(50)],
        pending_locks=breaking(),
    )
    with pytest.raises(RuntimeError, match="midway"):
        rstore.load_snapshot_stream(sections)
    assert rstore.snapshot() == before
    assert not [k for k in _keys_under(rstore) if k.startswith("tmp:")]


def _populate_tricky(adapter: RedisStateAdapter) -> None:
    """State whose orders differ between naive encodings and the snapshot's sort orders."""
    for thread in ("b", "a", "é", "z\x01", "A"):
        adapter.subscribe(thread)
        adapter.put_thread_state(thread, {"id": thread})
    # Tuple order: ("a", "b") < ("a!", "a"); JSON text (or a separator above "!") would sort
    # otherwise.
    for key in [("a!", "a"), ("a", "b"), ("a\x01", "x"), ("a", "\x01\x02"), ("a", "c")]:
        adapter.claim_dedupe(key, 100)
    adapter.put_channel_state("c2", {"n": 2})
    adapter.put_channel_state("c1", {"n": 1})
    adapter.lock("k2", "w", "queue")
    adapter.lock("k1", "w", "queue", {"m": 1})
    adapter.lock("k1", "v", "queue", {"m": 2})
    adapter.lock("k1", "u", "queue", {"m": 3})


def test_dedupe_members_sort_as_the_keys_and_decode_back() -> None:
    """Snapshots may carry any text (NUL too): the member encoding escapes NUL and SOH."""
    from chatstate.adapters.redis.keys import member as _member
    from chatstate.adapters.redis.keys import unmember as _unmember
    from chatstate.adapters.redis.keys import unmembers as _unmembers

    keys = [
        ("a", "b"),
        ("a!", "a"),
        ("a", "\x00"),
        ("a\x00", ""),
        ("a", "\x01\x00"),
        ("a\x01", "\x02"),
        ("", "z"),
        ("é", "x"),
        ("a", ""),
    ]
    members = [_member(k) for k in keys]
    assert [_unmember(m.encode()) for m in members] == keys
    assert _unmembers([m.encode() for m in members]) == keys
    by_bytes = sorted(members, key=lambda m: m.encode())
    assert [_unmember(m) for m in by_bytes] == sorted(keys)


def test_snapshot_sections_stream_in_the_json_forms_orders(rstore: RedisStateAdapter) -> None:
    from chatstate.snapshots.files.writer import write_snapshot

    _populate_tricky(rstore)
    expected = rstore.snapshot()
    assert expected.dedupe_order[:2] == [("a!", "a"), ("a", "b")]  # claim order kept
    out = io.StringIO()
    with rstore.snapshot_sections() as sections:
        assert sections.counts["dedupe"] == 5 and sections.counts["pending_locks"] == 1
        # The writer refuses an unsorted section: it checks every order on the way.
        write_snapshot(sections, out)
    assert out.getvalue() == expected.to_json()
    assert not [k for k in _keys_under(rstore) if k.startswith("snap:")]


def test_snapshot_sections_describe_the_state_at_entry(rstore: RedisStateAdapter) -> None:
    _populate_tricky(rstore)
    before = rstore.snapshot()
    with rstore.snapshot_sections() as sections:
        rstore.subscribe("later")
        rstore.claim_dedupe(("late", "1"))
        rstore.force_release_lock("k1")
        frozen = sections.to_snapshot()
    assert frozen == before


def test_load_snapshot_stream_round_trips_between_namespaces(make: Any) -> None:
    source, target = make(), make()
    _populate_tricky(source)
    target.subscribe("replaced")
    with source.snapshot_sections() as sections:
        target.load_snapshot_stream(sections)
    assert target.snapshot() == source.snapshot()
    with source.snapshot_sections() as sections:
        target.load_snapshot_stream(sections, merge=True)
    assert target.snapshot().pending_locks["k1"] == source.snapshot().pending_locks["k1"] * 2
    assert not [k for k in _keys_under(target) if k.startswith(("tmp:", "snap:"))]


# -- errors and checks -----------------------------------------------------------------


def test_an_unreachable_server_raises_backend_unavailable_naming_the_alias() -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    with override_settings(
        CACHES=_caches(
            gone={
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": url,
            }
        )
    ):
        adapter = RedisStateAdapter(namespace=_namespace(), alias="gone")
        with pytest.raises(BackendUnavailable, match="'gone'"):
            adapter.subscribe("t")
        with (
            pytest.raises(BackendUnavailable, match="'gone'"),
            adapter.handle_message(("s", "1"), thread_id="t", owner="w"),
        ):
            pass
        with pytest.raises(BackendUnavailable, match="'gone'"):
            asyncio.run(adapter.alock("k", "w"))


def test_an_alias_that_is_not_a_redis_cache_is_reported_on_use() -> None:
    with override_settings(CACHES=_caches()):
        with pytest.raises(BackendUnavailable, match="'nowhere' is not defined in CACHES"):
            RedisStateAdapter(alias="nowhere").subscribe("t")
        with pytest.raises(BackendUnavailable, match="'default' is not a Redis cache"):
            RedisStateAdapter(alias="default").subscribe("t")


def test_the_check_is_quiet_for_a_django_redis_alias() -> None:
    assert RedisStateAdapter(alias=ALIAS)._do_check() == []


@pytest.mark.parametrize("backend", [None, "django.core.cache.backends.locmem.LocMemCache"])
def test_the_check_warns_when_the_alias_is_not_django_redis(backend: str | None) -> None:
    aliases = {} if backend is None else {"other": {"BACKEND": backend}}
    with override_settings(CACHES=_caches(**aliases)):
        messages = RedisStateAdapter(alias="other")._do_check()
    assert [m.id for m in messages] == ["chatstate.W002"]
    assert "'other'" in messages[0].msg and isinstance(messages[0], checks.Warning)


def test_manage_py_check_reports_w002() -> None:
    chatstate = {
        "ADAPTER": "chatstate.adapters.redis.RedisStateAdapter",
        "OPTIONS": {"alias": "default"},
    }
    with override_settings(CACHES=_caches(), CHATSTATE=chatstate):
        ids = [m.id for m in checks.run_checks()]
    assert "chatstate.W002" in ids


def test_djangos_own_redis_cache_works_with_a_warning() -> None:
    alias = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": services.REDIS_URL,
    }
    with override_settings(CACHES=_caches(plain=alias)):
        adapter = RedisStateAdapter(namespace=_namespace(), alias="plain")
        try:
            adapter.subscribe("t")
            assert adapter.is_subscribed("t")
            assert [m.id for m in adapter._do_check()] == ["chatstate.W002"]
        finally:
            adapter.clear()
