"""Run chatstate operations in separate OS processes that start at the same moment.

A :class:`Crew` starts children with multiprocessing's ``forkserver`` context: each child is
forked from a server process of their own, a fresh interpreter that has only set Django up
on the test settings and imported the adapters (:mod:`tests.concurrency.preload`): nothing
of the parent's Django state or database connection is inherited, and a child does not pay
the second of CPU that importing all that again costs (``spawn``, where there is no
forkserver). Each child points the default database at the parent's test database, builds
the adapter of the test's backend in the test's namespace, opens its connection, waits at a
start barrier shared by its batch, runs one task of :mod:`tests.concurrency.tasks` and
reports the task's return value (or its traceback) through a queue.

Every batch is bounded in time: :meth:`Batch.wait` fails the test with a clear message
when a child does not report before the deadline, reports an error or dies, and kills any
child still running. This module imports nothing of Django at import time: it is the first
module a child imports.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier, Event
from typing import Any, cast

import pytest

#: How long a child may take to set Django up and reach the start line.
START_TIMEOUT = 60.0
#: The default bound on one batch, from spawn to the last report.
BATCH_TIMEOUT = 90.0

if "forkserver" in multiprocessing.get_all_start_methods():
    _CONTEXT = multiprocessing.get_context("forkserver")
    _CONTEXT.set_forkserver_preload(["tests.concurrency.preload"])
else:
    _CONTEXT = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class Target:
    """Where children work: the test database, the backend kind and the namespace."""

    db_name: str
    kind: str
    namespace: str


class _NoFinalizers:
    """Stands in for pytest's ``request`` in a child: the parent's adapter cleans up."""

    def addfinalizer(self, fn: Any) -> None:
        pass


def build_adapter(target: Target) -> Any:
    """In a child: set Django up on the parent's test database and build the adapter.

    The adapter comes from the same factories as the parent's ``store`` fixture
    (``tests.conftest.ALL_FACTORIES``), so a backend added there joins these tests too.
    """
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ.setdefault("CHATSTATE_TEST_DB", "postgres")  # the parent's run, inherited
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    for alias, database in settings.DATABASES.items():  # default, and its mirrors
        if alias == "default" or database.get("TEST", {}).get("MIRROR") == "default":
            database["NAME"] = connections[alias].settings_dict["NAME"] = target.db_name

    from tests.conftest import ALL_FACTORIES

    request = cast(pytest.FixtureRequest, _NoFinalizers())
    return ALL_FACTORIES[target.kind](request, target.namespace)


def child_main(
    target: Target,
    task: str,
    index: int,
    args: dict[str, Any],
    events: dict[str, Event],
    barrier: Barrier,
    results: Any,
) -> None:
    """A child's whole life: build the adapter, warm up, wait at the barrier, run, report."""
    at_start_line = True
    try:
        adapter = build_adapter(target)
        adapter.is_subscribed("xproc-warm-up")  # connect before the start line
        from tests.concurrency import tasks

        fn = getattr(tasks, task)
        barrier.wait(timeout=START_TIMEOUT)
        at_start_line = False
        started = time.monotonic()
        report = fn(adapter, index, events, **args)
        results.put((index, "ok", report, time.monotonic() - started))
    except BaseException:
        if at_start_line:  # the others stop waiting for a child that will never arrive
            barrier.abort()
        results.put((index, "error", traceback.format_exc(), 0.0))
        raise SystemExit(1) from None


class Batch:
    """Children started together on one task; :meth:`wait` collects what they report."""

    def __init__(
        self,
        task: str,
        processes: list[BaseProcess],
        barrier: Barrier,
        results: Any,
        timeout: float,
    ) -> None:
        self.task = task
        self.processes = processes
        # Process.start() drops its arguments: the batch keeps the synchronization objects
        # alive until every child has unpickled them.
        self._barrier = barrier
        self._results = results
        self._deadline = time.monotonic() + timeout
        self._timeout = timeout
        #: The longest task body of the batch (from the start barrier), once collected.
        self.seconds = 0.0

    def _collect(self) -> tuple[dict[int, Any], dict[int, str]]:
        done: dict[int, Any] = {}
        errors: dict[int, str] = {}
        waiting = set(range(len(self.processes)))
        while waiting:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                index, status, payload, seconds = self._results.get(timeout=min(0.2, remaining))
            except queue.Empty:
                if not any(self.processes[i].is_alive() for i in waiting):
                    # Dead without a report in the pipe yet? Give the pipe a last chance.
                    try:
                        index, status, payload, seconds = self._results.get(timeout=1.0)
                    except queue.Empty:
                        break
                else:
                    continue
            waiting.discard(index)
            (done if status == "ok" else errors)[index] = payload
            self.seconds = max(self.seconds, seconds)
        return done, errors

    def wait(self) -> list[Any]:
        """Every child's report, in child order; fails the test unless all reported ``ok``.

        Children still running at the deadline are killed first, so the test never hangs
        and the test database is free for its teardown.
        """
        done, errors = self._collect()
        stragglers = kill(self.processes)
        problems = [f"child {i} raised:\n{tb}" for i, tb in sorted(errors.items())]
        for i, process in enumerate(self.processes):
            if i not in done and i not in errors:
                state = (
                    "still running (killed)"
                    if i in stragglers
                    else (f"exited with code {process.exitcode} without reporting")
                )
                problems.append(f"child {i} {state}")
        if problems:
            pytest.fail(
                f"cross-process task {self.task!r}: {len(done)} of {len(self.processes)} "
                f"children finished cleanly (bound: {self._timeout:.0f}s)\n" + "\n".join(problems),
                pytrace=False,
            )
        return [done[i] for i in range(len(self.processes))]


def kill(processes: Sequence[BaseProcess]) -> set[int]:
    """SIGKILL the processes still running and reap all; return the indexes killed."""
    killed = set()
    for i, process in enumerate(processes):
        if process.is_alive():
            process.kill()
            killed.add(i)
    for process in processes:
        process.join(timeout=10)
    return killed


class Crew:
    """Spawns batches of children working on one :class:`Target`; kills leftovers at close."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.events: dict[str, Event] = {}
        self._spawned: list[BaseProcess] = []

    def event(self, name: str) -> Event:
        """A named event every child started afterwards receives (``events[name]``)."""
        self.events[name] = _CONTEXT.Event()
        return self.events[name]

    def start(
        self, task: str, args: Sequence[dict[str, Any]], timeout: float = BATCH_TIMEOUT
    ) -> Batch:
        """Spawn ``len(args)`` children running ``tasks.<task>(adapter, i, events, **args[i])``.

        They share one start barrier, so the task bodies begin at the same moment.
        """
        barrier = _CONTEXT.Barrier(len(args))
        results = _CONTEXT.Queue()
        processes = [
            _CONTEXT.Process(
                target=child_main,
                args=(self.target, task, i, dict(a), self.events, barrier, results),
                name=f"xproc-{task}-{i}",
                daemon=True,
            )
            for i, a in enumerate(args)
        ]
        for process in processes:
            process.start()
        self._spawned.extend(processes)
        return Batch(task, processes, barrier, results, timeout)

    def run(
        self, task: str, args: Sequence[dict[str, Any]], timeout: float = BATCH_TIMEOUT
    ) -> tuple[list[Any], float]:
        """Start a batch and wait for it: ``(reports in child order, longest task seconds)``."""
        batch = self.start(task, args, timeout)
        reports = batch.wait()
        return reports, batch.seconds

    def close(self) -> None:
        """Kill every child still running (a failed test must not leave one behind)."""
        kill(self._spawned)
