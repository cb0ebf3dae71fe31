"""The documentation site covers the public API: every name ``chatstate`` exports is in the
API reference (``docs/api.rst``), so a new public name cannot ship undocumented."""

from __future__ import annotations

import re
from pathlib import Path

import chatstate

DOCS = Path(__file__).resolve().parent.parent / "docs"


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
