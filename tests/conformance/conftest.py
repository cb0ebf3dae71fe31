"""The conformance suite runs on every backend of the run; the modules whose paths a pooler
changes (the message cycle's statements, prepared or not, one transaction per statement,
connections handed between clients) run on the PostgreSQL run's mirror kinds too: the fast
path through PgBouncer in transaction pooling, and through Django's own connection pool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ALL_FACTORIES, MIRRORS, next_namespace

#: The modules that also run through PgBouncer and Django's pool (``tests/test_poolers.py``
#: holds the pooler-specific tests).
MIRRORED = {
    "test_handle_message.py",
    "test_claim_leases.py",
    "test_drain.py",
    "test_unit_of_work.py",
    "test_outbox.py",
    "test_strategies.py",
    "test_async.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the mirror kinds' items of the modules not in :data:`MIRRORED`."""
    other = [
        item
        for item in items
        if (callspec := getattr(item, "callspec", None)) is not None
        and callspec.params.get("store") in MIRRORS
        and item.path.name not in MIRRORED
        and item.path.parent.name == "conformance"
    ]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if item not in other]


@pytest.fixture(params=list(ALL_FACTORIES))
def store(request: pytest.FixtureRequest, db: None) -> Iterator[Any]:
    """``tests.conftest.store``, on every kind (the mirror kinds' tests commit: see
    ``tests.conftest.pytest_collection_modifyitems``)."""
    yield ALL_FACTORIES[request.param](request, next_namespace())
