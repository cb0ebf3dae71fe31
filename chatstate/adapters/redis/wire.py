"""A thread's own blocking socket to Redis, for the scripts of the hot path.

A script's round trip through redis-py's connection costs more client CPU than the
server spends on the script: a poller built per check, and several layers of wrappers.
:class:`Wire` sends a packed command and reads its reply with hiredis, and nothing else.
It carries the settings :func:`supports` accepts: plain TCP or a Unix socket, RESP2, a
username and password, a database, a client name, socket timeouts and keepalive. Other
pools keep redis-py's connections.

A command is never sent again. A lost connection raises :class:`redis.ConnectionError`, a
timeout :class:`redis.TimeoutError`, and the wire is closed for good.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Mapping
from typing import Any

import redis

from chatstate.adapters.redis.multiplex import hiredis, refusal, reply_reader, setup_commands
from chatstate.adapters.redis.multiplex import supports as multiplexable

#: Events that say a connection holds unread data or was hung up (POLLRDHUP: a half-close).
_STALE = select.POLLIN | select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)


def supports(connection_class: type, kwargs: dict[str, Any]) -> bool:
    """Whether a :class:`Wire` can carry a pool of ``connection_class`` with ``kwargs``."""
    plain = connection_class in (
        redis.connection.Connection,
        redis.connection.UnixDomainSocketConnection,
    )
    return plain and hasattr(select, "poll") and multiplexable(kwargs)


class Wire:
    """One open connection; :meth:`call` sends a command and returns its reply."""

    __slots__ = ("sock", "reader", "poller", "buffer")

    def __init__(self, kwargs: dict[str, Any]) -> None:
        try:
            self.sock = _connect(kwargs)
        except OSError as exc:
            raise redis.ConnectionError(
                f"connecting to Redis at {_address(kwargs)} failed: {exc}"
            ) from exc
        self.reader = reply_reader(kwargs)
        self.poller = select.poll()
        self.poller.register(self.sock, _STALE)
        self.buffer = bytearray(65536)
        try:
            for command in setup_commands(kwargs):
                self.call(command)
        except (redis.ResponseError, redis.AuthenticationError) as exc:  # a refused login
            self.close()
            raise redis.ConnectionError(f"Redis refused the connection's setup: {exc}") from exc

    def stale(self) -> bool:
        """Whether the connection holds unread data or the server hung up: unfit for use."""
        return bool(self.poller.poll(0))

    def call(self, args: tuple[Any, ...]) -> Any:
        """Send one command; return its reply, or raise the error it answered."""
        try:
            self.sock.sendall(hiredis.pack_command(args))
            reader, buffer = self.reader, self.buffer
            while (reply := reader.gets()) is False:
                count = self.sock.recv_into(buffer)
                if not count:
                    raise redis.ConnectionError("the Redis connection was closed by the server")
                reader.feed(buffer, 0, count)
        except TimeoutError as exc:  # socket.timeout
            self.close()
            raise redis.TimeoutError(f"no reply from Redis in time: {exc}") from exc
        except redis.ConnectionError:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise redis.ConnectionError(f"the Redis connection failed: {exc}") from exc
        if isinstance(reply, redis.ResponseError):
            raise refusal(reply)
        return reply

    def close(self) -> None:
        """Close the socket; the wire is not used again."""
        self.sock.close()


class PinnedConnection:
    """A thread's connection to one pool: a :class:`Wire` when the pool's settings
    allow, else one of redis-py's connections (opened on first use, after a drop too)."""

    __slots__ = ("pool", "wire", "redis")

    def __init__(self, pool: Any, use_wire: bool) -> None:
        self.pool: Any = pool
        self.wire: Wire | None = None
        self.redis: Any = None if use_wire else pool.make_connection()

    @classmethod
    def open(cls, pool: Any) -> PinnedConnection:
        """The connection for ``pool``'s scripts: a wire when the pool's settings allow."""
        return cls(pool, supports(pool.connection_class, pool.connection_kwargs))

    def stale(self) -> bool:
        """Whether the open connection holds unread data or was hung up."""
        if self.redis is not None:
            try:
                return bool(self.redis.can_read())
            except redis.ConnectionError:
                return True
        return self.wire is not None and self.wire.stale()

    def drop(self) -> None:
        """Close the connection; the next call opens a fresh one."""
        if self.redis is not None:
            self.redis.disconnect()
        elif self.wire is not None:
            self.wire.close()
            self.wire = None

    def call(self, command: tuple[Any, ...]) -> Any:
        """Send ``command``; its reply."""
        if self.redis is not None:
            packed = self.redis.pack_command(*command) if hiredis is None else None
            self.redis.send_packed_command(
                packed or [hiredis.pack_command(command)], check_health=False
            )
            return self.redis.read_response()
        if self.wire is None:
            self.wire = Wire(self.pool.connection_kwargs)
        return self.wire.call(command)


def _address(kwargs: dict[str, Any]) -> str:
    if kwargs.get("path"):
        return str(kwargs["path"])
    return f"{kwargs.get('host') or 'localhost'}:{kwargs.get('port') or 6379}"


def keepalive_options(kwargs: dict[str, Any]) -> Mapping[int, int | bytes]:
    """The TCP keepalive options a redis-py connection of the pool would set."""
    options = kwargs.get("socket_keepalive_options")
    if options is None or isinstance(options, Mapping):
        return options or {}
    # redis-py 8 marks "not given" with a sentinel: its connections then set its defaults
    defaults = getattr(redis.connection, "get_default_socket_keepalive_options", None)
    return defaults() if defaults else {}


def _connect(kwargs: dict[str, Any]) -> socket.socket:
    if kwargs.get("path"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(kwargs.get("socket_connect_timeout"))
        sock.connect(kwargs["path"])
    else:
        where = (kwargs.get("host") or "localhost", int(kwargs.get("port") or 6379))
        sock = socket.create_connection(where, kwargs.get("socket_connect_timeout"))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if kwargs.get("socket_keepalive"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for option, value in keepalive_options(kwargs).items():
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
    sock.settimeout(kwargs.get("socket_timeout"))
    return sock
