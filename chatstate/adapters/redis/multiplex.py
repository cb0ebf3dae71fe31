"""Scripts of every coroutine of an event loop on one pipelined connection.

An ASGI server runs many conversations on one event loop. Each cycle is two scripts. A
connection per script costs a write, a wake-up and a read each time. Here the loop's
scripts share one connection per loop and cache alias, a few per write. Redis answers a
connection's commands in the order it received them. So replies are matched to scripts in
order. Node's Redis clients serve a whole server the same way.

A batch leaves as soon as it holds about the square root of the scripts in flight. It
holds at least 2. The rest leave at the end of the loop's turn. So Redis runs one part
while the loop builds the next. Holding a whole turn for one write would leave each side
idle half the time.

A script is never sent again. When the connection fails, every script waiting on it fails
with :class:`redis.ConnectionError`. The caller sees ``BackendUnavailable`` and cannot know
whether it ran. The cycle's cleanup and the claims' leases handle that. The next script
opens a new connection. With ``socket_timeout`` set, a script unanswered for that long
closes the connection the same way.

:func:`supports` says which connection settings this carries. Those are plain TCP or a
Unix socket, RESP2, a password and username, a database, a client name, and socket
timeouts. For TLS, RESP3 or a credential provider, the caller uses redis-py's connections
instead.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import redis

from chatstate.adapters.redis.invoke import ScriptCalls, arecover
from chatstate.adapters.redis.scripts import LuaScript

hiredis: Any
try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis comes with chatstate[redis]
    hiredis = None


def supports(kwargs: dict[str, Any]) -> bool:
    """Whether a :class:`Multiplexer` can carry a plain pool's ``connection_kwargs``.

    A plain pool uses TCP or a Unix socket. The protocol must be RESP2. A password must be
    given as such, not by a credential provider. TLS pools have a connection class of their
    own and are never multiplexed."""
    if hiredis is None or kwargs.get("credential_provider") is not None:
        return False
    return str(kwargs.get("protocol") or 2) == "2"


def reply_reader(kwargs: dict[str, Any]) -> Any:
    """A hiredis reader of a connection with ``kwargs``: reply errors as redis-py's."""
    encoding = (
        {"encoding": kwargs.get("encoding", "utf-8")} if kwargs.get("decode_responses") else {}
    )
    return hiredis.Reader(
        replyError=redis.ResponseError, protocolError=redis.ConnectionError, **encoding
    )


def setup_commands(kwargs: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What a new connection with ``kwargs`` sends first: login, database, name."""
    commands: list[tuple[Any, ...]] = []
    if kwargs.get("password"):
        user = [kwargs["username"]] if kwargs.get("username") else []
        commands.append(("AUTH", *user, kwargs["password"]))
    if int(kwargs.get("db") or 0):
        commands.append(("SELECT", int(kwargs["db"])))
    if kwargs.get("client_name"):
        commands.append(("CLIENT", "SETNAME", kwargs["client_name"]))
    return commands


class Multiplexer(asyncio.Protocol):
    """One connection of one event loop; :meth:`eval` is safe from any of its coroutines."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.timeout: float | None = kwargs.get("socket_timeout")
        self.transport: asyncio.Transport | None = None
        self.reader = reply_reader(kwargs)
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.outgoing: list[bytes] = []
        self._flush_due = False
        self.closed: BaseException | None = None
        self._watch: asyncio.TimerHandle | None = None
        self.calls = ScriptCalls()

    # -- opening --------------------------------------------------------------------------

    async def open(self) -> Multiplexer:
        """Connect, authenticate and select the database, or raise ``ConnectionError``."""
        loop = asyncio.get_running_loop()
        kwargs = self.kwargs
        try:
            if kwargs.get("path"):
                connecting = loop.create_unix_connection(lambda: self, kwargs["path"])
            else:
                connecting = loop.create_connection(
                    lambda: self, kwargs.get("host", "localhost"), int(kwargs.get("port", 6379))
                )
            await asyncio.wait_for(connecting, kwargs.get("socket_connect_timeout") or None)
        except (OSError, asyncio.TimeoutError) as exc:
            raise redis.ConnectionError(f"connecting to Redis failed: {exc}") from exc
        greeting = [self.send(command) for command in setup_commands(kwargs)]
        try:
            for reply in greeting:
                await reply
        except (redis.ResponseError, redis.AuthenticationError) as exc:  # a refused login
            self.abort(redis.ConnectionError(f"Redis refused the connection's setup: {exc}"))
            raise redis.ConnectionError(f"Redis refused the connection's setup: {exc}") from exc
        return self

    # -- sending and receiving ------------------------------------------------------------

    def send(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue one command; return the future of its reply.

        It leaves in order, with the batch it joins. The batch leaves once it holds about
        the square root of the commands in flight. Otherwise it leaves at the end of this
        turn of the loop."""
        if self.closed is not None:
            raise redis.ConnectionError(f"the Redis connection was lost: {self.closed}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        outgoing = self.outgoing
        outgoing.append(hiredis.pack_command(args))
        self.waiting.append((future, time.monotonic()))
        batch = len(outgoing)
        if batch * batch >= max(4, len(self.waiting)):
            self._flush()
        elif not self._flush_due:
            self._flush_due = True
            loop.call_soon(self._end_of_turn)
        if self.timeout and self._watch is None:
            self._watch = loop.call_later(self.timeout, self._check)
        return future

    async def eval(self, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        """Call ``script``; return its reply.

        A script the server lacks did not run. It is loaded and sent again."""
        try:
            return await self.send(self.calls.command(script, keys, args))
        except redis.ResponseError as error:
            return await arecover(self.calls.recovery(script, keys, args, error), self.send)

    def _flush(self) -> None:
        if self.outgoing and self.transport is not None and self.closed is None:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()

    def _end_of_turn(self) -> None:
        self._flush_due = False
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except redis.ConnectionError as exc:  # a reply that is not RESP: give up
                self.abort(exc)
                return
            if reply is False:
                return
            future, _ = self.waiting.popleft()
            if future.done():  # its caller was cancelled: the reply is dropped
                continue
            if isinstance(reply, redis.ResponseError):
                future.set_exception(refusal(reply))
            else:
                future.set_result(reply)

    # -- failing --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(redis.ConnectionError(f"the Redis connection was lost: {exc or 'closed'}"))

    def abort(self, exc: BaseException) -> None:
        """Close the connection; every script waiting on it fails with ``exc``."""
        self._fail(exc)
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: BaseException) -> None:
        if self.closed is None:
            self.closed = exc
        self.outgoing.clear()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(self.closed)

    def _check(self) -> None:
        """Apply the socket timeout.

        The oldest script, unanswered for ``socket_timeout``, closes the connection.
        Otherwise the check runs again when the oldest one's time is up."""
        self._watch = None
        if not self.waiting or self.timeout is None:
            return
        due = self.waiting[0][1] + self.timeout - time.monotonic()
        if due <= 0:
            self.abort(redis.TimeoutError(f"no reply from Redis within {self.timeout} s"))
        else:
            self._watch = asyncio.get_running_loop().call_later(due, self._check)


def refusal(reply: redis.ResponseError) -> Exception:
    """The error redis-py raises for a reply error, such as ``NoScriptError``.

    A server still loading its data answers ``LOADING``: that is ``BusyLoadingError``, a
    connection error, so the call counts as the server being unavailable."""
    error: Exception = redis.connection.DefaultParser.parse_error(str(reply))
    return error


class Pipelined:
    """Scripts of one ``redis.asyncio`` pool, and so one event loop, on one connection.

    The multiplexed connection opens on first use, and again after it failed."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.mux: Multiplexer | None = None
        self.opening: asyncio.Future[Multiplexer] | None = None

    async def eval(self, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        """:meth:`Multiplexer.eval` on the live connection."""
        mux = self.mux
        if mux is None or mux.closed is not None:
            mux = await self._open()
        return await mux.eval(script, keys, args)

    async def _open(self) -> Multiplexer:
        if self.opening is None:  # one opening, however many coroutines wait for it
            self.opening = asyncio.ensure_future(Multiplexer(self.kwargs).open())
            self.opening.add_done_callback(self._opened)
        return await asyncio.shield(self.opening)

    def _opened(self, opening: asyncio.Future[Multiplexer]) -> None:
        self.opening = None
        if not opening.cancelled() and opening.exception() is None:
            self.mux = opening.result()
