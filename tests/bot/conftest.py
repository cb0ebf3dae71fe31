"""The store a refused webhook request is checked against."""

from __future__ import annotations

from typing import Any

import pytest

from example_project.bot import views
from tests.conftest import STORE_FACTORIES, next_namespace


@pytest.fixture
def refusing_bot(request: pytest.FixtureRequest, db: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The bot's views on the run's own database store alone.

    It serves input a view refuses before it calls a store. Every kind of the run handles the
    accepted messages, in the tests of ``bot``."""
    store = STORE_FACTORIES["database"](request, next_namespace())
    monkeypatch.setattr(views, "get_adapter", lambda: store)
    return store
