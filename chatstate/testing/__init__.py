"""The conformance suite: the tests every ``StateAdapter`` backend must pass.

It is a pytest plugin. A project's root ``conftest.py`` loads it and says how to build
its adapter::

    pytest_plugins = ["chatstate.testing"]

    @pytest.fixture
    def chatstate_store_factory():
        return lambda namespace: MyStateAdapter(namespace=namespace)

Then ``pytest --pyargs chatstate.testing`` runs the suite against that adapter. It needs
pytest-django and a settings module with ``chatstate`` installed (``docs/backends.rst``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any

import pytest

_namespaces = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run without pytest-django: the suite's tests use its database fixtures."""
    if not config.pluginmanager.hasplugin("django"):
        raise pytest.UsageError("chatstate.testing needs pytest-django (docs/backends.rst)")


def next_namespace() -> str:
    """Return a namespace no other test of this process has used."""
    return f"suite{os.getpid()}-{next(_namespaces)}"


@pytest.fixture
def chatstate_store_factory() -> Callable[[str], Any]:
    """Build the adapter under test; a project's ``conftest.py`` overrides it.

    It is called with a namespace no other test of the process has used. It returns
    a fresh adapter, empty in that namespace. Its finalizers run before the test's
    database is torn down.
    """
    pytest.fail(
        "chatstate.testing needs a chatstate_store_factory fixture (docs/backends.rst)",
        pytrace=False,
    )


@pytest.fixture
def store(db: None, chatstate_store_factory: Callable[[str], Any]) -> Any:
    """A fresh, empty adapter in a namespace of its own.

    Each test runs in a transaction rolled back at its end (pytest-django's ``db``).
    """
    return chatstate_store_factory(next_namespace())


@pytest.fixture
def make_store(store: Any, chatstate_store_factory: Callable[[str], Any]) -> Callable[..., Any]:
    """Build another adapter like ``store``, in a new namespace or in ``namespace``."""

    def make(namespace: str | None = None) -> Any:
        return chatstate_store_factory(namespace or next_namespace())

    return make
