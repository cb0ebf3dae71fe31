"""A PgBouncer of the test run's own, in transaction pooling, in front of the test PostgreSQL.

:func:`ensure` starts ``pgbouncer`` (Debian's package) on the first free loopback port of
``CHATSTATE_PGBOUNCER_PORTS`` (default 6440-6449), with a generated ini in a temporary
directory: ``pool_mode = transaction``, trust authentication, every database name forwarded
to the test PostgreSQL (``[databases] * = host=... port=...``). It waits for the port to
accept connections (bounded: :data:`START_TIMEOUT`), records the port in the environment so
that processes the run spawns (which inherit it) reuse this bouncer instead of starting
their own, and stops it when the process that started it exits (its own pid only).

PgBouncer refuses to run as root: as root it is started with ``-u postgres`` (or ``nobody``).
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests import services

#: The environment variable holding the port of the run's bouncer, once started.
PORT_ENV = "CHATSTATE_PGBOUNCER_PORT"
#: How long pgbouncer may take to accept connections.
START_TIMEOUT = 10.0

INI = """\
[databases]
* = host={pg_host} port={pg_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {auth_file}
pool_mode = transaction
max_client_conn = 200
default_pool_size = 10
ignore_startup_parameters = extra_float_digits,options
server_login_retry = 1
"""

_started: subprocess.Popen[bytes] | None = None


class PgBouncerError(RuntimeError):
    """pgbouncer is not installed or did not start."""


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _ports() -> list[int]:
    """``CHATSTATE_PGBOUNCER_PORTS``, shifted by its width per pytest-xdist worker."""
    first, _, last = os.environ.get("CHATSTATE_PGBOUNCER_PORTS", "6440-6449").partition("-")
    low, high = int(first), int(last or first)
    shift = (high - low + 1) * services.WORKER
    return list(range(low + shift, high + shift + 1))


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["-u", user]
    raise PgBouncerError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def ensure() -> int:
    """The port of the run's PgBouncer: the one recorded in the environment (a process the
    run spawned), else, in a pytest process, a new one started now (stopped at exit).
    ``PgBouncerError`` when pgbouncer is missing, does not start in time, or is gone."""
    recorded = os.environ.get(PORT_ENV)
    if recorded:  # a process of the run that started it: never one of its own
        if _port_open(int(recorded)):
            return int(recorded)
        raise PgBouncerError(f"the run's pgbouncer on port {recorded} is gone")
    if "_pytest" not in sys.modules:  # a command a test runs does not need one
        raise PgBouncerError("pgbouncer is started by a pytest run only")
    binary = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )
    if binary is None:
        raise PgBouncerError("pgbouncer is not installed (apt-get install pgbouncer)")
    port = next((p for p in _ports() if not _port_open(p)), None)
    if port is None:
        raise PgBouncerError(f"no free port among {_ports()}")
    return _start(binary, port)


def _start(binary: str, port: int) -> int:
    global _started
    workdir = Path(tempfile.mkdtemp(prefix="chatstate-pgbouncer-"))
    workdir.chmod(0o755)  # readable by the user pgbouncer switches to
    auth_file = workdir / "users.txt"
    auth_file.write_text(f'"{services.PG["USER"]}" ""\n')
    ini = workdir / "pgbouncer.ini"
    ini.write_text(
        INI.format(
            pg_host=services.PG["HOST"], pg_port=services.PG["PORT"], port=port, auth_file=auth_file
        )
    )
    for path in (auth_file, ini):
        path.chmod(0o644)
    log = (workdir / "pgbouncer.log").open("wb")
    process = subprocess.Popen(
        [binary, *_run_as(), str(ini)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C of the test run reaches it through atexit only
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not _port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            text = (workdir / "pgbouncer.log").read_text(errors="replace")[-2000:]
            raise PgBouncerError(f"pgbouncer did not start on 127.0.0.1:{port}:\n{text}")
        time.sleep(0.05)
    _started = process
    atexit.register(stop)
    atexit.register(shutil.rmtree, workdir, True)
    os.environ[PORT_ENV] = str(port)
    return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # pgbouncer: fast exit, server connections closed
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def stop() -> None:
    """Stop the bouncer this process started (if any), closing its server connections, so
    that the test database can be dropped."""
    global _started
    if _started is not None:
        _stop(_started)
        _started = None
        os.environ.pop(PORT_ENV, None)
