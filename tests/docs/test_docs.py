"""The documentation site covers the public API: every name ``chatstate`` exports is in the
API reference (``docs/api.rst``), so a new public name cannot ship undocumented."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import chatstate

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_public_name_is_in_the_api_reference() -> None:
    text = (DOCS / "api.rst").read_text(encoding="utf-8")
    missing = [name for name in chatstate.__all__ if not re.search(rf"\b{name}\b", text)]
    assert missing == []


def test_every_page_is_in_the_table_of_contents() -> None:
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    pages = sorted(path.stem for path in DOCS.glob("*.rst") if path.stem != "index")
    assert [page for page in pages if not re.search(rf"^\s+{page}$", index, re.M)] == []


def test_every_setting_is_documented() -> None:
    from chatstate import conf

    text = (DOCS / "settings.rst").read_text(encoding="utf-8")
    assert [key for key in conf.DEFAULTS if f"``{key}``" not in text] == []


def test_every_system_check_is_documented() -> None:
    package = Path(chatstate.__file__).resolve().parent
    ids = {
        found
        for path in package.rglob("*.py")
        for found in re.findall(r"id=\"(chatstate\.[EW]\d{3})\"", path.read_text("utf-8"))
    }
    assert ids  # the scan finds the checks
    text = (DOCS / "checks.rst").read_text(encoding="utf-8")
    assert sorted(i for i in ids if f"``{i}``" not in text) == []


# -- links and headings (issue 22: the README's #redis-cluster link was dead) ------------------

ROOT = DOCS.parent
UNDERLINE = re.compile(r"([=\-~^\"'`#*+:.])\1{2,}")


def headings(rst: str) -> list[tuple[int, str, bool]]:
    """``(line, title, squeezed)`` for each section title of ``rst``; ``squeezed``: right
    under a paragraph's last line, so docutils reads it as part of that paragraph (no
    section, no id, and neither docutils nor Sphinx warns)."""
    lines = rst.splitlines()
    found = []
    for i in range(1, len(lines)):
        title = lines[i - 1]
        if (
            UNDERLINE.fullmatch(lines[i])
            and title.strip()
            and not title.startswith(" ")
            and not UNDERLINE.fullmatch(title)
        ):
            above = lines[i - 2] if i >= 2 else ""
            squeezed = bool(above.strip()) and not UNDERLINE.fullmatch(above)
            found.append((i, title.strip(), squeezed))
    return found


def section_ids(rst: str) -> set[str]:
    """The ids docutils gives the sections of ``rst`` (titles slugged) and its labels."""
    ids = set(re.findall(r"^\.\. _([\w-]+):\s*$", rst, re.M))
    for _, title, squeezed in headings(rst):
        if not squeezed:
            slug = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
            ids.add(re.sub(r"[^a-z0-9]+", "-", slug.lower()).strip("-"))
    return ids


def test_every_heading_has_a_blank_line_above() -> None:
    squeezed = [
        f"{page.name}:{line}: {title}"
        for page in sorted(DOCS.glob("*.rst"))
        for line, title, squeezed in headings(page.read_text(encoding="utf-8"))
        if squeezed
    ]
    assert squeezed == []


def test_the_readmes_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert any("#" in link for link in local)  # the scan sees the anchored ones
    broken = []
    for link in local:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        ids = section_ids(target.read_text(encoding="utf-8")) if target.exists() else set()
        if not target.exists() or (anchor and anchor not in ids):
            broken.append(link)
    assert broken == []


def test_the_deployment_page_has_the_redis_cluster_section() -> None:
    assert "redis-cluster" in section_ids((DOCS / "deployment.rst").read_text(encoding="utf-8"))


def test_no_code_example_handles_pending_entries_after_the_block() -> None:
    """Issue 22: entries handed out after ``handle_message``'s block are gone from the store
    and their claims done, so handling them there loses them when it fails; ``drain()``
    keeps that promise. No example may show the losing pattern."""
    sources = {"README.md": (ROOT / "README.md").read_text(encoding="utf-8")}
    sources |= {page.name: page.read_text(encoding="utf-8") for page in DOCS.glob("*.rst")}
    blocks = [
        (name, block)
        for name, text in sources.items()
        for block in re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)
        + re.findall(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", text, re.M)
    ]
    assert any("msg.drain()" in block for _, block in blocks)
    assert [name for name, block in blocks if re.search(r"\.pending\b", block)] == []


def test_install_lines_name_what_exists() -> None:
    """Issue 22: ``pip install ./chatstate`` worked only from a parent folder named
    chatstate, and the wheel's file name was never given. Every wheel named in the README
    and the docs is the one ``pip wheel`` builds from this checkout (its version from
    ``pyproject.toml``); every install from source names the clone as ``path/to/chatstate``."""
    from tests.docs.tutorial_walk import expected_wheel

    texts = [(ROOT / "README.md").read_text(encoding="utf-8")]
    texts += [page.read_text(encoding="utf-8") for page in DOCS.glob("*.rst")]
    wheels = {name for text in texts for name in re.findall(r"chatstate-[\w.-]+\.whl", text)}
    assert wheels == {expected_wheel()}
    installs = [
        line.strip()
        for text in texts
        for line in text.splitlines()
        if re.search(r"\bpip install\b", line) and "pip install chatstate`" not in line
    ]
    assert installs  # the scan sees them
    sources = [line for line in installs if not re.search(r"\.whl|path/to/chatstate", line)]
    assert [line for line in sources if '-e ".[test]"' not in line] == []
