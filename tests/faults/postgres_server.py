"""A private PostgreSQL server for the tests that crash one: its own port and data directory.

``initdb`` and ``pg_ctl`` come from the server's own installation (``pg_config --bindir``,
else Debian's ``/usr/lib/postgresql/<version>/bin``). PostgreSQL refuses to run as root: as
root the server runs as the ``postgres`` user (``runuser``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import services


def _bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = Path(subprocess.check_output([pg_config, "--bindir"], text=True).strip())
        if (found / "initdb").exists():
            return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    return None


BINDIR = _bindir()


class PostgresServer:
    """A PostgreSQL cluster in a temporary directory on a free loopback port, durable as
    shipped (``fsync`` and ``synchronous_commit`` on); :meth:`crash` stops it the way a
    power cut does (``pg_ctl stop -m immediate``: no checkpoint, what the WAL buffers held
    is gone) and starts it again, through crash recovery."""

    def __init__(self, *settings: str) -> None:
        if BINDIR is None:
            pytest.fail("no PostgreSQL server installation (initdb) for a private server")
        self.port = services.free_port()
        #: ``-c name=value`` options of the server, read at each start.
        self.settings = list(settings)
        self.dir = Path(tempfile.mkdtemp(prefix="chatstate-pg-"))
        self.data = self.dir / "data"
        self.user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.user:
            uid = pwd.getpwnam("postgres")
            os.chown(self.dir, uid.pw_uid, uid.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        assert BINDIR is not None
        subprocess.run(
            [*self.user, str(BINDIR / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=on"
        options = " ".join([options, *self.settings])
        self._run("pg_ctl", "start", "-w", "-t", "30", "-D", str(self.data), "-o", options,
                  "-l", str(self.dir / "log"))  # fmt: skip

    def crash(self) -> None:
        self._run("pg_ctl", "stop", "-m", "immediate", "-D", str(self.data))
        self.start()

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self._run("pg_ctl", "stop", "-m", "immediate", "-D", str(self.data))
        shutil.rmtree(self.dir, ignore_errors=True)
