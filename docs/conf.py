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
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# No intersphinx: the build reads nothing from the network. Names in signatures that have
# no target here stay plain text (not nitpicky).
nitpicky = False

exclude_patterns = ["_build"]
templates_path: list[str] = []

try:
    import furo  # noqa: F401

    html_theme = "furo"
except ImportError:  # the default theme when furo is not installed
    html_theme = "alabaster"
html_title = "chatstate"
