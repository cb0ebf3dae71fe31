"""The message-cycle benchmark behind ``manage.py chatstate_bench`` (operators size a
database or a Redis with it): :func:`build_config` checks the options, :func:`run_bench` runs
the worker processes and returns the figures (:data:`FIELDS`); :func:`run_outbox_bench`
measures the outbox's dispatch.

It lives in the source tree, not in chatstate's wheel: it drives the TypeScript peers
(``bench/peer``, npm), pgbench floors and private servers, which need the repository anyway.
``bench`` is a Django app (``INSTALLED_APPS``) for its command; its names load lazily, so the
app registry can import the package before the models are ready.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "ADAPTERS": "runner",
    "FIELDS": "runner",
    "MODES": "runner",
    "build_config": "runner",
    "run_bench": "runner",
    "format_table": "table",
    "outbox_config": "outbox",
    "run_outbox_bench": "outbox",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"bench.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
