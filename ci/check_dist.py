"""What the sdist and the wheel carry, against the files git tracks (stdlib only).

``python ci/check_dist.py DIST_DIR`` exits non-zero, listing the files, unless:

* the wheel holds exactly the tracked files under ``chatstate/`` (modules, migrations,
  templates, ``*.sql``, ``py.typed``), besides its ``.dist-info``;
* the sdist holds exactly the tracked files of the package, the whole test suite and what
  it needs (``tests/``, ``example_project/``, ``manage.py``, ``conftest.py``, ``bench/``),
  the build and test configuration, ``ci/`` and ``docs/`` (which ``tests/docs/test_docs.py``
  reads), besides what setuptools generates (``PKG-INFO``, ``setup.cfg``,
  ``*.egg-info``) — so ``pytest`` runs from an unpacked sdist, and nothing the suite
  needs is left out.

Outside a git checkout there is nothing to compare with: it says so and exits 0.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDIST_DIRS = ("chatstate/", "tests/", "example_project/", "ci/", "docs/", "bench/")
SDIST_FILES = {
    "LICENSE",
    "MANIFEST.in",
    "Makefile",
    "README.md",
    "conftest.py",
    "manage.py",
    "pyproject.toml",
    "tox.ini",
}
GENERATED = ("PKG-INFO", "setup.cfg")


def tracked() -> set[str] | None:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {name for name in out.decode().split("\0") if name and (ROOT / name).exists()}


def compare(label: str, found: set[str], expected: set[str]) -> list[str]:
    problems = [f"{label} lacks {name}" for name in sorted(expected - found)]
    problems += [
        f"{label} carries untracked or unexpected {name}" for name in sorted(found - expected)
    ]
    return problems


def main(dist: Path) -> int:
    files = tracked()
    if files is None:
        print("check_dist: not a git checkout, nothing to compare the archives with")
        return 0
    (wheel,) = dist.glob("chatstate-*.whl")
    (sdist,) = dist.glob("chatstate-*.tar.gz")

    with zipfile.ZipFile(wheel) as zf:
        in_wheel = {n for n in zf.namelist() if not n.endswith("/") and ".dist-info/" not in n}
    with tarfile.open(sdist) as tf:
        top = tf.getnames()[0].split("/")[0]
        in_sdist = {
            m.name.split("/", 1)[1] for m in tf.getmembers() if m.isfile() and "/" in m.name
        }
    in_sdist = {n for n in in_sdist if n not in GENERATED and ".egg-info/" not in n}

    problems = compare(wheel.name, in_wheel, {f for f in files if f.startswith("chatstate/")})
    problems += compare(
        sdist.name,
        in_sdist,
        {f for f in files if f.startswith(SDIST_DIRS) or f in SDIST_FILES},
    )
    for problem in problems:
        print(f"check_dist: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"check_dist: {wheel.name}: {len(in_wheel)} files; {top}.tar.gz: {len(in_sdist)} "
        "files (package, test suite, example project): each exactly the tracked set"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
