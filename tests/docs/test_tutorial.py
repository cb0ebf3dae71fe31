"""``docs/tutorial.rst`` runs as written: a fresh ``startproject`` built from the tutorial's own
code blocks (read from the file, not copied here), step by step (see
:mod:`tests.docs.tutorial_walk`): check, migrate, ``startapp``, the webhook through ``runserver``
with the outputs the tutorial prints, ``createsuperuser`` and the admin pages logged in.

Here the project runs on the interpreter of this test run (chatstate installed from this
checkout); the install lines are checked against the wheel ``pip wheel`` writes. ``make
wheel-smoke`` walks the same tutorial literally: a new venv, the wheel built and installed.
The project is SQLite, as in the tutorial: the test belongs to the SQLite run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.tutorial_walk import Block, Walk, WalkFailed, code_blocks, commands, expected_wheel

pytestmark = pytest.mark.run_on("sqlite")


def test_a_fresh_project_follows_the_tutorial(tmp_path: Path) -> None:
    walk = Walk(tmp_path)
    steps = walk.run()
    assert steps.index("python manage.py startapp bot") < steps.index("wrote bot/views.py")
    assert sum(step.startswith("curl ") for step in steps) == 3
    assert walk.admin_pages["/admin/chatstate/threadstate/"].count("T1") >= 1
    assert (tmp_path / "mysite" / "db.sqlite3").exists()


def test_every_sh_line_is_a_command_the_walk_runs() -> None:
    tutorial = (Path(__file__).resolve().parents[2] / "docs" / "tutorial.rst").read_text()
    blocks = code_blocks(tutorial)
    assert {block.language for block in blocks} == {"sh", "python"}
    lines = [c.line for block in blocks if block.language == "sh" for c in commands(block)]
    assert f"pip install dist/{expected_wheel()}" in lines
    assert "python manage.py createsuperuser" in lines


def test_the_walk_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    walk = Walk(tmp_path)
    (command,) = commands(Block("sh", "rm -rf build   # tidy up\n", 1))
    with pytest.raises(WalkFailed, match="a command this walk does not know"):
        walk.command(command, Block("sh", "", 1))
    (install,) = commands(Block("sh", 'pip install "./chatstate"\n', 1))
    with pytest.raises(WalkFailed, match="pip wheel writes"):
        walk.command(install, Block("sh", "", 1))


def test_expected_outputs_are_read_from_comments() -> None:
    text = 'curl -X POST localhost:8000/webhook \\\n     -d \'{"a": 1}\'\n# {"status": "x"}\n'
    (command,) = commands(Block("sh", text, 1))
    assert command.argv == ["curl", "-X", "POST", "localhost:8000/webhook", "-d", '{"a": 1}']
    assert command.expected == {"status": "x"}
