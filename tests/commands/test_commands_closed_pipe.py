"""Commands whose reader goes away (``chatstate_snapshot | head``) end quietly.

In-process with a real pipe whose reading end is closed (so writing fails with EPIPE, as
under a shell), and once as a subprocess the way an operator runs it.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from django.core.management import call_command

from chatstate.adapters.database import DatabaseStateAdapter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def closed_pipe() -> Iterator[IO[str]]:
    """The writing end of a pipe nobody reads any more."""
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    writer = os.fdopen(write_fd, "w")
    yield writer
    with contextlib.suppress(BrokenPipeError):  # what it still buffers goes nowhere
        writer.close()


def run_into(name: str, stdout: IO[str], **options: Any) -> tuple[int | str | None, str]:
    """Run a command writing to ``stdout``; its exit code (None: it returned) and stderr."""
    err = io.StringIO()
    try:
        call_command(name, stdout=stdout, stderr=err, **options)
    except SystemExit as exc:
        return exc.code, err.getvalue()
    return None, err.getvalue()


@pytest.mark.django_db
def test_snapshot_into_a_closed_pipe_ends_quietly(closed_pipe: IO[str]) -> None:
    store = DatabaseStateAdapter(namespace="pipe")
    for i in range(50):
        store.put_thread_state(f"t{i}", {"turns": i, "note": "x" * 2000})  # > a pipe's buffer
    code, err = run_into("chatstate_snapshot", closed_pipe, namespace="pipe")
    assert code == 1  # the snapshot did not reach its reader, and says so by its status
    assert err == ""  # no "CommandError: … Broken pipe", no traceback


@pytest.mark.django_db
def test_prune_into_a_closed_pipe_ends_quietly(closed_pipe: IO[str]) -> None:
    store = DatabaseStateAdapter(namespace="pipe")
    store.claim_dedupe(("slack", "m1"), 10)
    store.claim_dedupe(("slack", "m2"), 10)
    code, err = run_into("chatstate_prune", closed_pipe, namespace="pipe", dedupe_limit=1)
    assert (code, err) == (1, "")
    assert not store.is_duplicate(("slack", "m1"))  # the pruning itself was done


@pytest.mark.django_db
def test_an_open_pipe_gets_the_whole_output() -> None:
    out = io.StringIO()
    code, err = run_into("chatstate_snapshot", out, namespace="pipe-empty")
    assert (code, err) == (None, "")
    assert out.getvalue().startswith("{")


@pytest.mark.run_on("sqlite")
def test_snapshot_piped_to_head_exits_quietly(tmp_path: Path) -> None:
    """``manage.py chatstate_snapshot | head -c 1`` as a shell runs it."""
    env = {
        **os.environ,
        "CHATSTATE_TEST_DB": "sqlite",
        "CHATSTATE_SQLITE_NAME": str(tmp_path / "db.sqlite3"),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
    }
    django = [sys.executable, "-m", "django"]
    subprocess.run([*django, "migrate", "-v", "0"], env=env, cwd=ROOT, check=True)
    fill = (
        "import django; django.setup();"
        "from chatstate.adapters.database import DatabaseStateAdapter as A;"
        "a = A(namespace='default');"
        "[a.put_thread_state(f't{i}', {'note': 'x' * 2000}) for i in range(200)]"
    )
    subprocess.run([sys.executable, "-c", fill], env=env, cwd=ROOT, check=True)
    # 400 kB of snapshot; head takes one byte and leaves.
    shell = f"{' '.join(django)} chatstate_snapshot | head -c 1 >/dev/null"
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {shell}"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stderr == ""
    assert done.returncode == 1  # pipefail: the snapshot's own status
