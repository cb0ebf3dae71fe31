"""Fixtures of the cross-process tests: real OS processes against the PostgreSQL or MariaDB/MySQL
test database (and Redis, when the Redis adapter is part of the run).

These tests need a server shared by processes, so they belong to the PostgreSQL and
MariaDB/MySQL runs: in the SQLite run they are deselected (reported as such), not skipped.

``store`` is overridden here: the same backends as the rest of the suite (minus the
in-process memory adapter), but on ``transactional_db``, so what the parent writes is
committed and visible to its children, and what the children write is visible to it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from tests.concurrency.harness import Crew, Target
from tests.conftest import ALL_FACTORIES, VENDOR

HERE = Path(__file__).parent
#: The runs these tests belong to (by database vendor).
RUNS = ("postgresql", "mysql")
#: Backends another process can reach (the memory adapter lives in one process), and the
#: fast path through PgBouncer. Django's pool is the fast path on a pool of the process's
#: own: its conformance suite and ``tests/backends/test_poolers.py`` cover it (here it would add
#: some 75 s to the run).
KINDS = [kind for kind in ALL_FACTORIES if kind not in ("memory", "database_pool")]
_namespaces = itertools.count(1)


#: The modules that also run through PgBouncer: the message cycle, the queue's handover and
#: the faults, whose statements a transaction pooler spreads over server connections. The
#: rest run once per backend, not once per pooler.
POOLED = {"test_message_cycle.py", "test_drain.py", "test_faults.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside the runs of ``RUNS``, deselect the tests of this directory; through PgBouncer,
    those of the modules not in :data:`POOLED`."""
    ours = [item for item in items if HERE in Path(str(item.path)).parents]
    if VENDOR in RUNS:
        ours = [
            item
            for item in ours
            if (callspec := getattr(item, "callspec", None)) is not None
            and callspec.params.get("store") == "database_pgbouncer"
            and item.path.name not in POOLED
        ]
    if ours:
        config.hook.pytest_deselected(items=ours)
        items[:] = [item for item in items if item not in ours]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, transactional_db: None) -> Any:
    """The parent's adapter, in a namespace of its own, on committed transactions."""
    namespace = f"x{os.getpid()}-{next(_namespaces)}"
    return ALL_FACTORIES[request.param](request, namespace)


@pytest.fixture
def crew(request: pytest.FixtureRequest, store: Any) -> Iterator[Crew]:
    """Spawns children working on the same backend and namespace as ``store``."""
    target = Target(
        db_name=connections["default"].settings_dict["NAME"],
        kind=request.node.callspec.params["store"],
        namespace=store.namespace,
    )
    crew = Crew(target)
    yield crew
    crew.close()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record the figures of a test (printed now, and again in the terminal summary)."""

    def record(**values: Any) -> None:
        text = ", ".join(
            f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
        )
        line = f"{request.node.name}: {text}"
        print(f"\n[crossprocess] {line}")
        # tests/plugin.py prints it in the summary, from any pytest-xdist worker
        request.node.user_properties.append(("figures", line))

    return record
