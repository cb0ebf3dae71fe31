"""Checks the documentation build makes (``make docs``: warnings are errors).

- **References.** Python references that name a public object by another path
  (``LeaseLost`` in a docstring of ``chatstate.cycle``,
  ``chatstate.snapshots.snapshot.snapshot_from``)
  resolve to the public name ``chatstate.<name>`` documented in the API reference; the
  others fail the build (``nitpicky``), unless listed in ``conf.nitpick_ignore``.
- **The README's links into the docs.** Every ``docs/<page>.rst`` link in ``README.md``
  names a page of the site and, after ``#``, an id that page has (a section's id is its
  title, lowercased, words joined by ``-``). A heading that docutils reads as a paragraph
  (no blank line above it) has no id, so its link fails the build.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

logger = logging.getLogger(__name__)

README = Path(__file__).resolve().parents[2] / "README.md"
DOC_LINK = re.compile(r"\]\(docs/([\w/-]+)\.rst(?:#([\w-]+))?\)")


def _public_name(target: str) -> str | None:
    """``chatstate.<name>`` when ``target`` names an object ``chatstate`` exports."""
    import chatstate

    name = target.rsplit(".", 1)[-1]
    if name not in chatstate.__all__:
        return None
    if "." in target:  # a dotted path must name that very object
        module_name, _, attr = target.rpartition(".")
        try:
            found = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            return None
        if found is not getattr(chatstate, name):
            return None
    return f"chatstate.{name}"


def _inherited(node: Any) -> list[str]:
    """For ``:meth:`name``` in a class's docstring: ``name`` on each of the class's bases."""
    module, cls_name, target = node.get("py:module"), node.get("py:class"), node["reftarget"]
    if not module or not cls_name or "." in target:
        return []
    try:
        cls = getattr(importlib.import_module(module), cls_name.split(".")[0])
    except (ImportError, AttributeError):
        return []
    return [f"{base.__module__}.{base.__qualname__}.{target}" for base in cls.__mro__[1:]]


def resolve_public(
    app: Sphinx, env: BuildEnvironment, node: Any, contnode: nodes.Element
) -> nodes.Element | None:
    """Resolve what a plain lookup missed: a public object named by another path, or a
    method a class inherits (documented on its base)."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    public = _public_name(target)
    candidates = [public] if public is not None and public != target else []
    if node["reftype"] in ("meth", "attr"):
        candidates += _inherited(node)
    domain = env.get_domain("py")
    for candidate in candidates:
        found = domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], candidate, node, contnode
        )
        if found is not None:
            return found
    return None


def check_readme_links(app: Sphinx, env: BuildEnvironment) -> None:
    text = README.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        for page, anchor in DOC_LINK.findall(line):
            where = f"{README}:{number}"
            if page not in env.all_docs:
                logger.warning("README.md links to docs/%s.rst, not a page", page, location=where)
                continue
            if not anchor:
                continue
            ids = {
                node_id
                for element in env.get_doctree(page).findall(nodes.Element)
                for node_id in element.get("ids", [])
            }
            if anchor not in ids:
                logger.warning(
                    "README.md links to docs/%s.rst#%s: that page has no such id",
                    page,
                    anchor,
                    location=where,
                )


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("missing-reference", resolve_public)
    app.connect("env-check-consistency", check_readme_links)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
