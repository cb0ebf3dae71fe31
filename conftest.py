"""The run's root conftest: the conformance suite on every backend of the run.

``chatstate.testing`` is the suite as a third-party backend runs it (``docs/backends.rst``);
here ``chatstate_store_factory`` gives it each store kind of ``tests/conftest.py``.
:mod:`tests.plugin` holds the fixtures and hooks that every test of the run sees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ALL_FACTORIES, MIRRORS

pytest_plugins = ["chatstate.testing", "tests.plugin"]

#: The suite's modules that also run on the mirror kinds (PgBouncer, Django's pool): those
#: whose paths a pooler changes — the message cycle's statements, prepared or not, one
#: transaction per statement, connections handed between clients.
#: ``tests/backends/test_poolers.py`` holds the pooler-specific tests.
MIRRORED = {
    "test_handle_message.py",
    "test_claim_leases.py",
    "test_drain.py",
    "test_unit_of_work.py",
    "test_outbox.py",
    "test_strategies.py",
    "test_async.py",
}


@pytest.fixture(params=list(ALL_FACTORIES))
def chatstate_store_factory(request: pytest.FixtureRequest) -> Callable[[str], Any]:
    """Each store kind of the run, mirror kinds included (see :data:`MIRRORED`)."""
    factory = ALL_FACTORIES[request.param]
    return lambda namespace: factory(request, namespace)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the mirror kinds' items of the suite's modules not in :data:`MIRRORED`."""
    other = [
        item
        for item in items
        if (callspec := getattr(item, "callspec", None)) is not None
        and callspec.params.get("chatstate_store_factory") in MIRRORS
        and item.path.name not in MIRRORED
    ]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if item not in other]
