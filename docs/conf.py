"""Sphinx configuration: the chatstate documentation site (``make docs``).

autodoc imports chatstate, whose modules need Django's settings: the test suite's settings
(SQLite; no server is reached) are set up before the first import.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("CHATSTATE_TEST_DB", "sqlite")

import django  # noqa: E402

django.setup()

project = "chatstate"
author = "the chatstate authors"
copyright = "the chatstate authors"
release = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "doccheck",  # docs/_ext/doccheck.py: public names resolved, README links checked
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Every cross-reference must resolve: a broken one fails the build (with -W). No
# intersphinx (the build reads nothing from the network), so the standard library's names in
# signatures stay plain text; so do the internal names below, which the site does not
# document (bases and helpers named in signatures and docstrings).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:class", r"(collections\.abc|contextlib|typing|types)\.\w+"),
    # The backends' internal mixins, named in their adapters' "Bases:" lines.
    (r"py:class", r"chatstate\.adapters\.\w+\.\w+\.\w+(Rows|Cycle|Lists|Outbox|Activity|Locks)"),
]
nitpick_ignore = [
    ("py:class", "chatstate.adapters.asyncapi.AsyncStateAPI"),
    ("py:class", "chatstate.adapters.base.A"),
    ("py:class", "chatstate.adapters.database.locks.LockRows"),
    ("py:class", "chatstate.adapters.database.window.DedupeWindowRows"),
    ("py:class", "chatstate.adapters.database.postgres.PostgresStateAdapter"),
    ("py:class", "chatstate.snapshots.files.reader.SnapshotFile"),
    ("py:mod", "chatstate.models"),
    ("py:class", "chatstate.adapters.checked.CheckedCalls"),
    ("py:class", "chatstate.adapters.memory.lists.MemoryLists"),
    ("py:mod", "chatstate.channelops"),
    ("py:class", "Stage"),  # chatstate.staging.Stage, in ChannelOps' and History's signatures
    ("py:func", "chatstate.validation.history_key"),
]

exclude_patterns = ["_build"]
templates_path: list[str] = []

try:
    import furo  # noqa: F401

    html_theme = "furo"
except ImportError:  # the default theme when furo is not installed
    html_theme = "alabaster"
html_title = "chatstate"
