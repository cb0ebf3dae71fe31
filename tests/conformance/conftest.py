"""The conformance suite also runs on the mirror kinds of the PostgreSQL run: the fast path
through PgBouncer in transaction pooling, and through Django's own connection pool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ALL_FACTORIES, next_namespace


@pytest.fixture(params=list(ALL_FACTORIES))
def store(request: pytest.FixtureRequest, db: None) -> Iterator[Any]:
    """``tests.conftest.store``, on every kind (the mirror kinds' tests commit: see
    ``tests.conftest.pytest_collection_modifyitems``)."""
    yield ALL_FACTORIES[request.param](request, next_namespace())
