"""``manage.py chatstate_snapshot``: streamed, deterministic, atomic snapshot JSON.

Runs against the configured database adapter (SQLite run and PostgreSQL run); helpers here
are shared with the restore and prune command tests.
"""

from __future__ import annotations

import io
import itertools
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.adapters.memory import MemoryStateAdapter
from chatstate.management.commands.chatstate_restore import Command as RestoreCommand
from chatstate.management.commands.chatstate_snapshot import Command as SnapshotCommand
from chatstate.snapshots.files.writer import UnsortedSection, write_snapshot
from chatstate.snapshots.sections import SnapshotSections
from chatstate.snapshots.snapshot import Snapshot

_names = itertools.count(1)


def namespace() -> str:
    return f"cmd{os.getpid()}-{next(_names)}"


def populate(ns: str, keys: int = 6) -> DatabaseStateAdapter:
    """A namespace with something in every section (non-ASCII ids and values included)."""
    store = DatabaseStateAdapter(namespace=ns)
    for thread in ("t2", "t-é", "t1"):
        store.subscribe(thread)
    for i in (3, 1, 4, 0, 5, 2)[:keys] if keys <= 6 else range(keys):
        store.claim_dedupe(("slack", f"m{i}"), 1000)
    store.put_thread_state("t1", {"turns": 3, "nested": {"b": [1, 2.5, None, True], "a": "ü"}})
    store.put_thread_state("t-é", {})
    store.put_channel_state("c1", {"topic": "support"})
    store.lock("t1", "w1", "queue", {"m": 1})
    store.lock("t1", "w2", "queue", {"m": 2})
    store.lock("t1", "w3", "queue")
    store.lock("t2", "w1", "debounce")
    store.lock("t2", "w9", "debounce", {"latest": True})
    return store


def run(name: str, *args: Any, **options: Any) -> tuple[str, str]:
    """``call_command`` capturing ``(stdout, stderr)`` (unless given in ``options``)."""
    out, err = options.pop("stdout", io.StringIO()), options.pop("stderr", io.StringIO())
    call_command(name, *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@contextmanager
def adapter_path(path: str) -> Iterator[None]:
    with override_settings(CHATSTATE={"ADAPTER": path, "NAMESPACE": "default"}):
        yield


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- stdout --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("indent", [None, 0, 2])
def test_stdout_is_the_snapshot_json(indent: int | None) -> None:
    store = populate(namespace())
    args = [] if indent is None else ["--indent", str(indent)]
    out, err = run("chatstate_snapshot", "--namespace", store.namespace, *args)
    assert out == store.snapshot().to_json(indent) + "\n"
    assert Snapshot.from_json(out) == store.snapshot()
    assert err == ""  # not a terminal: no progress


@pytest.mark.django_db
def test_the_namespace_defaults_to_the_setting() -> None:
    populate("default")
    out, _ = run("chatstate_snapshot")
    assert out == DatabaseStateAdapter(namespace="default").snapshot().to_json() + "\n"
    other = namespace()
    with override_settings(CHATSTATE={"NAMESPACE": other}):
        out, _ = run("chatstate_snapshot")
    assert out == Snapshot().to_json() + "\n"


@pytest.mark.django_db
def test_same_state_gives_same_bytes() -> None:
    store = populate(namespace())
    first, _ = run("chatstate_snapshot", "--namespace", store.namespace, "--indent", "2")
    second, _ = run("chatstate_snapshot", "--namespace", store.namespace, "--indent", "2")
    assert first == second
    # The same state reached in another insertion order (sets, maps) gives the same bytes.
    snapshot = store.snapshot()
    twin = DatabaseStateAdapter(namespace=namespace())
    twin.load_snapshot(
        Snapshot(
            subscriptions=set(sorted(snapshot.subscriptions, reverse=True)),
            dedupe=snapshot.dedupe,
            dedupe_order=snapshot.dedupe_order,
            thread_state=dict(reversed(list(snapshot.thread_state.items()))),
            channel_state=snapshot.channel_state,
            locks=dict(reversed(list(snapshot.locks.items()))),
            pending_locks=snapshot.pending_locks,
        )
    )
    third, _ = run("chatstate_snapshot", "--namespace", twin.namespace, "--indent", "2")
    assert third == first


@pytest.mark.django_db
def test_an_empty_namespace() -> None:
    out, _ = run("chatstate_snapshot", "--namespace", namespace())
    assert out == Snapshot().to_json() + "\n"


@pytest.mark.django_db
def test_progress_on_a_terminal_only(tmp_path: Path) -> None:
    store = populate(namespace())
    tty = TTY()
    call_command(
        "chatstate_snapshot",
        "--namespace",
        store.namespace,
        "--output",
        str(tmp_path / "s.json"),
        stdout=io.StringIO(),
        stderr=tty,
    )
    assert f"snapshot {store.namespace}: " in tty.getvalue()
    assert "rows" in tty.getvalue()


@pytest.mark.django_db
def test_progress_is_plain_and_adds_up_to_the_summary(tmp_path: Path) -> None:
    """Issue 22: progress printed in the error style (bold red, as Django styles stderr),
    one line per report, and counted the dedupe keys twice (90,646 rows where the summary
    totals 60,424)."""
    store = populate(namespace())
    tty, stdout = TTY(), io.StringIO()
    # As from a colour terminal: Django gives the command's stderr the error style.
    command = SnapshotCommand(stdout=stdout, stderr=tty, force_color=True)
    call_command(command, "--namespace", store.namespace, "--output", str(tmp_path / "s.json"))
    out, progress = stdout.getvalue(), tty.getvalue()
    assert "\x1b[" not in progress  # no ANSI style: not an error
    assert progress.startswith("\r") and progress.count("\n") == 1 and progress.endswith("\n")
    last = progress.rstrip("\n").rsplit("\r", 1)[-1]
    summary = re.search(r": (.*)\.$", out.strip())
    assert summary is not None
    total = sum(int(n.replace(",", "")) for n in re.findall(r" ([\d,]+)", summary[1]))
    assert total == 3 + 6 + 2 + 1 + 2 + 2  # subscriptions, dedupe_order, states, locks, queues
    assert last == f"snapshot {store.namespace}: {total:,} / {total:,} rows"
    # The restore of that file counts the same rows.
    target = namespace()
    command = RestoreCommand(stdout=io.StringIO(), stderr=(tty := TTY()), force_color=True)
    call_command(command, str(tmp_path / "s.json"), "--namespace", target)
    progress = tty.getvalue()
    assert "\x1b[" not in progress and progress.count("\n") == 1
    assert (
        progress.rstrip("\n").rsplit("\r", 1)[-1] == f"restore {target}: {total:,} / {total:,} rows"
    )


@pytest.mark.django_db
def test_bad_arguments_are_refused() -> None:
    with pytest.raises(CommandError, match="--indent must be 0 or more"):
        run("chatstate_snapshot", "--indent", "-1")
    with pytest.raises(CommandError, match="namespace"):
        run("chatstate_snapshot", "--namespace", "x" * 256)
    with (
        adapter_path("chatstate.adapters.nothing.Here"),
        pytest.raises(CommandError, match="cannot build the chatstate adapter"),
    ):
        run("chatstate_snapshot")


# -- --output ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_output_writes_the_file(tmp_path: Path) -> None:
    store = populate(namespace())
    target = tmp_path / "snap.json"
    out, _ = run("chatstate_snapshot", "--namespace", store.namespace, "--output", str(target))
    assert target.read_text(encoding="utf-8") == store.snapshot().to_json() + "\n"
    assert "subscriptions 3" in out and str(target) in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.json"]


class BrokenAdapter(DatabaseStateAdapter):
    """Fails in the middle of an export, after part of the JSON was written."""

    @contextmanager
    def snapshot_sections(self) -> Iterator[SnapshotSections]:
        with super().snapshot_sections() as sections:
            sections.thread_state = self._fail_after(sections.thread_state, 1)
            yield sections

    @staticmethod
    def _fail_after(items: Any, n: int) -> Iterator[Any]:
        for i, item in enumerate(items):
            if i == n:
                raise RuntimeError("export failed midway")
            yield item


@pytest.mark.django_db
def test_a_failed_export_leaves_the_old_file(tmp_path: Path) -> None:
    store = populate(namespace())
    target = tmp_path / "snap.json"
    target.write_bytes(b'{"old": "file"}\n')
    os.chmod(target, 0o640)
    with (
        adapter_path("tests.commands.test_commands_snapshot.BrokenAdapter"),
        pytest.raises(RuntimeError, match="midway"),
    ):
        run("chatstate_snapshot", "--namespace", store.namespace, "--output", str(target))
    assert target.read_bytes() == b'{"old": "file"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["snap.json"]  # no temporary file left
    # The next successful export replaces it and keeps its mode.
    run("chatstate_snapshot", "--namespace", store.namespace, "--output", str(target))
    assert Snapshot.from_json(target.read_bytes()) == store.snapshot()
    assert target.stat().st_mode & 0o777 == 0o640


@pytest.mark.django_db
def test_an_unwritable_output_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot write"):
        run("chatstate_snapshot", "--output", str(tmp_path / "missing-dir" / "s.json"))


# -- the streaming pieces the command is built on ------------------------------------------


def test_default_hooks_stream_any_adapter() -> None:
    store = MemoryStateAdapter(namespace="m")
    store.subscribe("b")
    store.subscribe("a")
    store.claim_dedupe(("x", "2"), 10)
    store.claim_dedupe(("x", "1"), 10)
    store.put_thread_state("t", {"k": [1]})
    with store.snapshot_sections() as sections:
        out = io.StringIO()
        write_snapshot(sections, out, 3)
    assert out.getvalue() == store.snapshot().to_json(3)


def test_writer_refuses_unsorted_sections() -> None:
    sections = SnapshotSections(subscriptions=["b", "a"])
    with pytest.raises(UnsortedSection, match="subscriptions"):
        write_snapshot(sections, io.StringIO())
    with pytest.raises(UnsortedSection, match="thread_state"):
        write_snapshot(SnapshotSections(thread_state=[("a", {}), ("a", {})]), io.StringIO())
