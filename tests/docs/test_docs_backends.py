"""``docs/backends.rst`` runs as written: its project runs the conformance suite.

The page's files and commands are read from the page (:mod:`tests.docs.backend_walk`). Here the
project runs on this test run's interpreter, on a copy of the checkout's package, and on a
few of the suite's modules. ``make wheel-smoke`` runs the whole suite from the built wheel.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.docs.backend_walk import ROOT, checkout_project, run

pytestmark = pytest.mark.run_on("sqlite")

#: The modules run here: the fixtures, transactions that commit, ``make_store``.
MODULES = "test_subscriptions or test_namespaces or test_handle_message"


def test_the_pages_project_passes_the_suite(tmp_path: Path) -> None:
    project = tmp_path / "project"
    argv, env = checkout_project(project)
    output = run([*argv, "-q", "-k", MODULES], project, env)
    counts = re.search(r"\b(\d+) passed, (\d+) deselected in", output)
    assert counts, output[-2000:]
    assert int(counts[1]) >= 30 and int(counts[1]) + int(counts[2]) >= 500  # the whole suite
    assert "tests per backend" not in output  # the checkout's own conftest.py stayed out


def test_a_backend_that_breaks_the_contract_fails_the_suite(tmp_path: Path) -> None:
    """The suite has teeth: an adapter that forgets subscriptions fails it."""
    project = tmp_path / "project"
    argv, env = checkout_project(project)
    with (project / "mybackend.py").open("a", encoding="utf-8") as module:
        module.write("\n    def is_subscribed(self, thread_id):\n        return False\n")
    with pytest.raises(AssertionError, match=r"exited 1[\s\S]*FAILED test_subscriptions"):
        run([*argv, "-q", "-k", "test_subscriptions"], project, env)


def test_the_plugin_says_what_a_project_lacks(tmp_path: Path) -> None:
    """Without pytest-django, or without ``chatstate_store_factory``, the run says so."""
    project = tmp_path / "project"
    argv, env = checkout_project(project)
    with pytest.raises(AssertionError, match="chatstate.testing needs pytest-django"):
        run([*argv, "-p", "no:django", "-k", "test_subscribe_is_idempotent"], project, env)
    (project / "conftest.py").write_text('pytest_plugins = ["chatstate.testing"]\n')
    with pytest.raises(AssertionError, match="needs a chatstate_store_factory fixture"):
        run([*argv, "-k", "test_subscribe_is_idempotent"], project, env)


def test_the_package_never_imports_the_checkouts_tests() -> None:
    """``chatstate.testing`` runs from a wheel, where ``tests`` does not exist."""
    found = []
    for path in (ROOT / "chatstate").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path}: {n}" for n in names if n.split(".")[0] == "tests"]
    assert found == []
