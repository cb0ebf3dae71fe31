"""Follow the conformance suite's section of ``docs/backends.rst`` in a new directory.

The section's code blocks are the steps. A ``python`` or ``ini`` block whose first line is
``# <path>`` is that file of the project. The ``sh`` block is the commands: the install
line and ``pytest --pyargs chatstate.testing``. Any other command fails the walk.

Two modes:

- ``checkout`` (``tests/docs/test_docs_backends.py``): chatstate is a copy of this checkout's
  package, first on the path; pytest and pytest-django are the test run's. The install
  line is checked, not run. Extra pytest arguments may narrow the run.
- ``literal`` (``ci/wheel-smoke.sh``): the commands run in the virtualenv ``--venv``, where
  the wheel is installed; the install line installs ``--wheel`` (built from the clone)
  with its extra.

Standard library only (the smoke runs it before its venv has Django)::

    python tests/docs/backend_walk.py WORKDIR --venv VENV --wheel WHEEL
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "backends.rst"
SECTION = "The conformance suite"
INSTALL = 'pip install "path/to/chatstate[testing]"'
RUN = "pytest --pyargs chatstate.testing"
TIMEOUT = 600
#: What the walk's project must not inherit from the run that starts it.
UNSET = ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")


class WalkFailed(AssertionError):
    """A step of the page did not do what the page says."""


def section_blocks() -> list[tuple[str, str]]:
    """``(language, text)`` of each code block of the section, dedented."""
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(f"\n{SECTION}\n")
    end = re.search(r"\n\S[^\n]*\n[-=~]{3,}\n", text[start + len(SECTION) + 2 :])
    section = text[start : start + len(SECTION) + 2 + end.start()] if end else text[start:]
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: (\w+)\n\n((?:(?: {3}.*)?\n)+)", section, re.M):
        body = re.sub(r"^ {3}", "", match[2], flags=re.M).strip("\n") + "\n"
        blocks.append((match[1], body))
    return blocks


def write_project(workdir: Path) -> list[str]:
    """Write the section's files into ``workdir``; return its commands."""
    commands = []
    for language, body in section_blocks():
        if language == "sh":
            commands += [line.strip() for line in body.splitlines() if line.strip()]
            continue
        first = body.splitlines()[0]
        path = re.fullmatch(r"# (\S+)", first)
        if path is None:
            raise WalkFailed(f"a {language} block does not start with '# <path>': {first!r}")
        (workdir / path[1]).write_text(body, encoding="utf-8")
    if commands != [INSTALL, RUN]:
        raise WalkFailed(f"commands this walk does not know: {commands}")
    return commands


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(extra)
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run ``argv``; return its output, or fail the walk with it."""
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise WalkFailed(f"{shlex.join(argv)} exited {done.returncode}:\n{output[-6000:]}")
    return output


def checkout_project(workdir: Path) -> tuple[list[str], dict[str, str]]:
    """Write the project for this interpreter, chatstate copied from the checkout.

    Return the page's pytest command and its environment, to run in ``workdir``."""
    workdir.mkdir(parents=True)
    write_project(workdir)
    site = workdir.parent / f"{workdir.name}-site"
    shutil.copytree(
        ROOT / "chatstate", site / "chatstate", ignore=shutil.ignore_patterns("__pycache__")
    )
    pytest = Path(sys.executable).with_name("pytest")
    return [str(pytest), *shlex.split(RUN)[1:]], clean_env(PYTHONPATH=str(site))


def walk_literal(workdir: Path, venv: Path, wheel: Path) -> str:
    """The project in ``venv``: the wheel installed with its extra; pytest's output."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_project(workdir)
    env = clean_env()
    run([str(venv / "bin" / "pip"), "install", f"{wheel}[testing]"], workdir, env)
    return run([str(venv / "bin" / "pytest"), *shlex.split(RUN)[1:]], workdir, env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--venv", type=Path, required=True)
    parser.add_argument("--wheel", type=Path, required=True)
    args = parser.parse_args()
    try:
        output = walk_literal(args.workdir, args.venv.resolve(), args.wheel.resolve())
    except WalkFailed as exc:
        print(f"backend walk FAILED: {exc}", file=sys.stderr)
        return 1
    print(output.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
