"""What the outbox's worker tests share: committing sends, checking deliveries, waiting."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.outbox.sender import deliveries

ROOT = Path(__file__).parent.parent.parent


@dataclass
class Workers:
    """Starts worker processes on the test's database, backend and namespace; their sender
    records each delivery in ``sent_file``."""

    env: dict[str, str]
    sent_file: Path

    def start(self, *argv: str, **env: str) -> subprocess.Popen[str]:
        """``argv`` (``manage.py ...`` when it starts with a command name) as a process."""
        command = list(argv) if argv[0] == "celery" else [sys.executable, "manage.py", *argv]
        if command[0] == "celery":
            command = [sys.executable, "-m", *command]
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *argv: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``manage.py argv`` to its end (killed after ``timeout`` s)."""
        proc = self.start(*argv, **env)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"{argv} did not end in {timeout} s\n{out}\n{err}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def deliveries(self) -> list[dict[str, Any]]:
        return deliveries(self.sent_file)

    def wait_for(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        """The deliveries once there are ``count`` of them (a failure after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.deliveries()
            if len(got) >= count:
                return got
            time.sleep(0.05)
        got = self.deliveries()
        assert len(got) >= count, f"{len(got)} of {count} deliveries after {timeout} s"
        return got


def commit_sends(store: Any, threads: int, per_thread: int, tag: str = "m") -> list[str]:
    """One message per entry, ``per_thread`` into each of ``threads`` threads, interleaved;
    the entries' keys in commit order."""
    keys = []
    for n in range(per_thread):
        for t in range(threads):
            mid = f"{tag}{t}-{n:03d}"
            with store.handle_message(("p", mid), thread_id=f"t{t}", owner=mid) as msg:
                keys.append(msg.send({"mid": mid, "n": n}))
    return keys


def check_delivered_once_in_order(store: Any, got: list[dict[str, Any]], keys: list[str]) -> None:
    """Every key delivered once; each thread's in commit order; the outbox empty."""
    assert sorted(d["key"] for d in got) == sorted(keys)
    position = {key: n for n, key in enumerate(keys)}  # keys come in commit order
    by_thread: dict[str, list[int]] = {}
    for d in got:
        by_thread.setdefault(d["thread"], []).append(position[d["key"]])
    for thread, order in by_thread.items():
        assert order == sorted(order), f"{thread} out of commit order: {order}"
    assert store.outbox() == []


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """``predicate()``'s first true value within ``timeout`` s; a failure naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout} s")
