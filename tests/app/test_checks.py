"""System checks: a misconfigured ``CHATSTATE`` is reported by ``manage.py check``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.db import connection, transaction
from django.test import override_settings

MEMORY = "chatstate.adapters.memory.MemoryStateAdapter"
DATABASE = "chatstate.adapters.database.DatabaseStateAdapter"


def chatstate_messages(databases: list[str] | None = None) -> dict[str, str]:
    """``{id: "message hint"}`` of the chatstate messages of ``run_checks()``."""
    return {
        m.id: f"{m.msg} {m.hint or ''}"
        for m in checks.run_checks(databases=databases)
        if m.id and m.id.startswith("chatstate.")
    }


def test_the_test_settings_pass() -> None:
    assert chatstate_messages() == {}


@pytest.mark.parametrize(
    ("setting", "expected", "mentions"),
    [
        ("not a dict", "chatstate.E001", "must be a dict"),
        ({"ADAPTER": DATABASE, "NAMESAPCE": "typo"}, "chatstate.E002", "NAMESAPCE"),
        ({"ADAPTER": "chatstate.adapters.nope.NopeAdapter"}, "chatstate.E003", "nope"),
        ({"ADAPTER": "chatstate.conf.DEFAULTS"}, "chatstate.E003", "chatstate.conf.DEFAULTS"),
        ({"ADAPTER": "NotADottedPath"}, "chatstate.E003", "NotADottedPath"),
        ({"ADAPTER": MEMORY, "OPTIONS": ["namespace"]}, "chatstate.E004", "OPTIONS"),
        ({"ADAPTER": MEMORY, "OPTIONS": {"colour": "blue"}}, "chatstate.E004", "colour"),
        ({"ADAPTER": DATABASE, "OPTIONS": {"using": "missing"}}, "chatstate.E004", "missing"),
        ({"NAMESPACE": ""}, "chatstate.E004", "namespace"),
        ({"DEDUPE_LIMIT": 0}, "chatstate.E004", "DEDUPE_LIMIT"),
        ({"LOCK_TTL": -1}, "chatstate.E004", "ttl"),
        ({"DATABASE": "replica"}, "chatstate.E005", "replica"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("chatstate.") else None,
)
def test_a_misconfiguration_is_reported(setting: Any, expected: str, mentions: str) -> None:
    with override_settings(CHATSTATE=setting):
        found = chatstate_messages()
    assert expected in found, found
    assert mentions in found[expected]


@pytest.mark.parametrize(("debug", "warned"), [(False, True), (True, False)])
def test_the_memory_adapter_without_debug_is_a_warning(debug: bool, warned: bool) -> None:
    with override_settings(CHATSTATE={"ADAPTER": MEMORY}, DEBUG=debug):
        messages = checks.run_checks()
    found = [m for m in messages if m.id == "chatstate.W001"]
    assert bool(found) is warned
    if warned:
        assert found[0].level == checks.WARNING
        assert not any(m.id and m.id.startswith("chatstate.E") for m in messages)


@contextmanager
def lock_table_away() -> Iterator[None]:
    """chatstate's lock table renamed away, and back at the end (MySQL's DDL is not rolled
    back with the test's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE chatstate_lock RENAME TO chatstate_lock_away")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE chatstate_lock_away RENAME TO chatstate_lock")


@pytest.mark.django_db
def test_missing_tables_are_reported_with_database_checks() -> None:
    assert chatstate_messages(databases=["default"]) == {}

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), lock_table_away(), transaction.atomic():
        found = chatstate_messages(databases=["default"])
        raise Rollback
    # A warning, not an error, so that ``migrate`` itself is not stopped by it.
    assert "chatstate.W003" in found and "migrate chatstate" in found["chatstate.W003"]
    assert chatstate_messages(databases=["default"]) == {}


@pytest.mark.django_db
def test_missing_tables_do_not_matter_to_another_adapter() -> None:
    with (
        override_settings(CHATSTATE={"ADAPTER": MEMORY}, DEBUG=True),
        lock_table_away(),
        transaction.atomic(),
    ):
        found = chatstate_messages(databases=["default"])
        transaction.set_rollback(True)
    assert found == {}


@pytest.fixture
def tables_missing(db: None) -> Iterator[None]:
    """chatstate's tables gone (renamed inside the test's transaction, and back after)."""
    with lock_table_away():
        yield


@pytest.mark.parametrize(
    ("argv", "warned"),
    [
        (["manage.py", "check"], True),  # a plain check, before migrate
        (["manage.py", "migrate"], False),  # migrate's own checks: it creates the tables
        (["manage.py", "runserver"], False),  # other commands do not reach the database
        (["manage.py", "collectstatic"], False),
    ],
)
def test_a_plain_check_reports_missing_tables(
    tables_missing: None, monkeypatch: pytest.MonkeyPatch, argv: list[str], warned: bool
) -> None:
    monkeypatch.setattr(sys, "argv", argv)
    found = chatstate_messages()  # no --database
    assert ("chatstate.W003" in found) is warned, found


def test_check_with_database_reports_missing_tables_once(
    tables_missing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["manage.py", "check", "--database", "default"])
    found = [m for m in checks.run_checks(databases=["default"]) if m.id == "chatstate.W003"]
    assert len(found) == 1


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.run_on("sqlite")
def test_check_before_migrate_warns_and_migrate_is_not_stopped(tmp_path: Path) -> None:
    """The commands as a new user runs them, on a fresh database."""
    env = {
        **os.environ,
        "CHATSTATE_TEST_DB": "sqlite",
        "CHATSTATE_SQLITE_NAME": str(tmp_path / "fresh.sqlite3"),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
    }

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )

    before = manage("check")
    assert before.returncode == 0, before.stderr  # a warning: nothing stops
    assert "chatstate.W003" in before.stderr and "migrate chatstate" in before.stderr
    migrate = manage("migrate")
    assert migrate.returncode == 0, migrate.stderr
    assert "W003" not in migrate.stdout + migrate.stderr
    after = manage("check")
    assert (after.returncode, "W003" in after.stdout + after.stderr) == (0, False)
    assert "no issues" in after.stdout
