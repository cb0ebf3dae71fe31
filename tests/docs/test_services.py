"""``python -m tests.services``, which ``make test`` asks before each server's suite: a server
that does not answer is absent (its suite is skipped outside CI); one that answers while its
Python driver is missing is not absent, so the suite fails and says what to install."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests import services


@pytest.fixture
def answering(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every server answers on its port; no driver can be imported."""
    monkeypatch.setattr(services, "_port_open", lambda host, port: True)

    def no_driver(name: str, *args: Any) -> Any:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", no_driver)


@pytest.mark.parametrize("name", ["postgres", "mysql"])
@pytest.mark.usefixtures("answering")
def test_a_server_that_answers_without_its_driver_fails_its_suite(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert services.main(["services", name]) == services.DRIVER_MISSING
    said = capsys.readouterr().err
    assert "answers at" in said and "is not installed" in said and f"the {name} suite" in said


@pytest.mark.parametrize("name", ["postgres", "mysql"])
def test_a_server_that_does_not_answer_is_absent(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "_port_open", lambda host, port: False)
    monkeypatch.setattr(services, "IN_CI", False)
    assert services.main(["services", name]) == 1


def test_a_needed_service_that_does_not_answer_is_deselected_or_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(services.SERVICES, "broker", (lambda: False, "the broker at b:1"))
    monkeypatch.setitem(services.SERVICES, "up", (lambda: True, "the other at u:1"))
    monkeypatch.setattr(services, "IN_CI", False)
    assert services.unreachable({"broker", "up"}) == {"broker"}
    monkeypatch.setattr(services, "IN_CI", True)
    assert services.unreachable({"up"}) == set()
    with pytest.raises(RuntimeError, match="CI=true but unreachable: the broker at b:1"):
        services.unreachable({"broker", "up"})
