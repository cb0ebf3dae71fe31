"""The Makefile's targets do what the README says: every target it declares has a recipe, and
``make test-sqlite`` / ``test-postgres`` / ``test-mysql`` each run one backend's suite.

Issue 22: ``make test-sqlite`` and ``make test-postgres`` were declared phony without a
recipe, so they exited 0 having run nothing. ``make -n`` prints the recipes without running
them (a recursive ``$(MAKE)`` line still runs, itself under ``-n``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")


def dry_run(*targets: str) -> str:
    """The recipes ``make -n`` prints. make is a tool the README's commands need, not a
    service: without it these tests fail, they are not skipped."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed: the README's commands need it (apt-get install make)")
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def pytest_runs(output: str) -> list[str]:
    """The backends of the pytest commands in ``make -n`` output, in order."""
    return re.findall(r"^CHATSTATE_TEST_DB=(\w+) \S*python -m pytest\b", output, re.M)


def test_every_declared_target_has_a_recipe() -> None:
    declared = re.search(r"^\.PHONY:((?:.*\\\n)*.*)$", MAKEFILE, re.M)
    assert declared is not None
    names = declared[1].replace("\\\n", " ").split()
    defined = {
        name for line in re.findall(r"^([\w .-]+):(?!=)", MAKEFILE, re.M) for name in line.split()
    }
    assert "test-mysql" in names
    assert [name for name in names if name not in defined] == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_one_backend_target_runs_that_backends_suite(backend: str) -> None:
    assert pytest_runs(dry_run(f"test-{backend}")) == [backend]


def test_make_test_starts_with_the_sqlite_run() -> None:
    assert pytest_runs(dry_run("test"))[0] == "sqlite"


def test_the_readme_says_how_long_and_how_to_run_one_backend() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"`make test` takes about \d+ minutes", readme)
    for target in ("make test-sqlite", "make test-postgres", "make test-mysql"):
        assert f"`{target}`" in readme
