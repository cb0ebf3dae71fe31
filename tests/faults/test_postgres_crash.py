"""PostgreSQL crashing under load (``pg_ctl stop -m immediate``, then crash recovery): what a
crash forgets — among it an acquired cycle's claim and lock, which commit without waiting for
the WAL flush (docs/deployment.rst) — is handled again by the redeliveries, and every
message's effect is applied exactly once.

The server is a private cluster the test creates (:mod:`tests.faults.postgres_server`); the
load runs in a process of its own configured for it (:mod:`tests.faults.postgres_crash_load`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.postgres_server import PostgresServer

pytestmark = pytest.mark.run_on("postgresql")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.close()


def test_crashes_under_load_neither_double_nor_lose(
    server: PostgresServer, figures: Callable[..., None]
) -> None:
    messages, crashes = 120, 3  # the load (~3 s) outlasts the crashes
    load = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.postgres_crash_load", str(server.port), str(messages)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # its failed cleanups' log lines: shown if it fails
        text=True,
    )
    try:
        assert load.stdout is not None
        assert load.stdout.readline().strip() == "ready"
        crashed = 0
        stop = threading.Event()

        def crash() -> None:
            nonlocal crashed
            while crashed < crashes and not stop.wait(0.2):
                server.crash()
                crashed += 1

        thread = threading.Thread(target=crash, daemon=True)
        thread.start()
        out, err = load.communicate(timeout=240)
        stop.set()
        thread.join()
    finally:
        if load.poll() is None:
            load.kill()
    assert load.returncode == 0, f"{out}\n{err[-3000:]}"
    report = json.loads(out.strip().splitlines()[-1])
    met, counts = report["met"], report["counts"]
    unavailable, redeliveries = met.get("unavailable", 0), met.get("redeliveries", 0)
    figures(
        backend="database",
        crashes=crashed,
        unavailable=unavailable,
        redeliveries=redeliveries,
        **counts,
    )
    assert crashed == crashes
    assert unavailable >= 1  # the crashes were met, not missed
    assert counts == {"messages": messages, "applied": messages, "doubles": 0, "lost": 0}
