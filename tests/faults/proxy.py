"""A TCP proxy of the tests' own that loses replies on purpose.

``FaultProxy(host, port)`` listens on a free loopback port and forwards every connection to
the server behind it. ``arm(pattern)`` makes it drop, once, the server's reply to the next
client message that contains ``pattern`` — after the server has run it (for a commit: after
it committed) — and cut that connection: the client sees a connection error and cannot know
whether its request ran. This is the fault a network, a proxy or a crashed client host
produces, injected exactly where it hurts.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class FaultProxy:
    """Forwards loopback connections to ``(host, port)``; loses armed replies."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pattern: bytes | None = None
        self._sockets: set[socket.socket] = set()
        #: Replies lost so far (each one an injected fault).
        self.dropped = 0
        #: Client connections accepted so far.
        self.accepted = 0
        self._closed = False
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()

    def arm(self, pattern: bytes) -> None:
        """Lose the reply to the next client message containing ``pattern`` (once)."""
        with self._lock:
            self._pattern = pattern

    def disarm(self) -> bool:
        """Forget an armed pattern; whether one was still armed (its message never came)."""
        with self._lock:
            armed, self._pattern = self._pattern is not None, None
            return armed

    def cut_all(self) -> None:
        """Cut every connection now (a server restart, as its clients see it)."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)

    def close(self) -> None:
        self._closed = True
        _close(self.listener)
        self.cut_all()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                _close(client)
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets.update((client, server))
                self.accepted += 1
            lose = threading.Event()
            threading.Thread(target=self._up, args=(client, server, lose), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, lose), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, lose: threading.Event) -> None:
        """Client to server; a message matching the armed pattern marks its reply lost."""
        try:
            while data := client.recv(65536):
                with self._lock:
                    if self._pattern is not None and self._pattern in data:
                        self._pattern = None
                        lose.set()
                server.sendall(data)
        except OSError:
            pass
        self._end(client, server)

    def _down(self, server: socket.socket, client: socket.socket, lose: threading.Event) -> None:
        """Server to client; the reply to a marked message is dropped and both ends cut."""
        try:
            while data := server.recv(65536):
                if lose.is_set():
                    with self._lock:
                        self.dropped += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        self._end(client, server)

    def _end(self, client: socket.socket, server: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(client)
            self._sockets.discard(server)
        _close(client)
        _close(server)


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        sock.close()
