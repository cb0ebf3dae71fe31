"""System checks: a misconfigured ``CHATSTATE`` is reported by ``manage.py check``."""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import DatabaseError, connections

from chatstate import conf

KNOWN_KEYS = set(conf.DEFAULTS)


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Report an unusable ``CHATSTATE`` setting before the first webhook does."""
    from chatstate.registry import adapter_class, build_adapter

    errors: list[checks.CheckMessage] = []
    raw = getattr(settings, "CHATSTATE", {})
    if not isinstance(raw, dict):
        return [checks.Error("CHATSTATE must be a dict.", id="chatstate.E001")]
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        errors.append(
            checks.Error(
                f"CHATSTATE has unknown keys: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(sorted(KNOWN_KEYS))}.",
                id="chatstate.E002",
            )
        )
    cfg = conf.chatstate_settings()
    path = cfg["ADAPTER"]
    try:
        cls = adapter_class(path)
    except (ImportError, TypeError, ValueError) as exc:
        errors.append(
            checks.Error(
                f"CHATSTATE['ADAPTER'] = {path!r} cannot be used: {exc}",
                hint="Use a dotted path such as "
                "'chatstate.adapters.database.DatabaseStateAdapter'.",
                id="chatstate.E003",
            )
        )
        return errors
    if not isinstance(cfg["OPTIONS"], dict):
        errors.append(checks.Error("CHATSTATE['OPTIONS'] must be a dict.", id="chatstate.E004"))
        return errors
    database = cfg["DATABASE"]
    if database is not None and database not in connections:
        errors.append(
            checks.Error(
                f"CHATSTATE['DATABASE'] = {database!r} is not an alias in DATABASES.",
                id="chatstate.E005",
            )
        )
        return errors
    try:
        adapter = build_adapter()
    except (TypeError, ValueError) as exc:
        errors.append(
            checks.Error(
                f"The chatstate adapter {path} cannot be built from CHATSTATE: {exc}",
                hint="Check CHATSTATE['OPTIONS'], NAMESPACE, DEDUPE_LIMIT and LOCK_TTL.",
                id="chatstate.E004",
            )
        )
        return errors
    from chatstate.adapters.memory import MemoryStateAdapter

    if issubclass(cls, MemoryStateAdapter) and not settings.DEBUG:
        errors.append(
            checks.Warning(
                "chatstate uses MemoryStateAdapter with DEBUG=False: its state lives in one "
                "process and is lost on restart; other workers do not see it.",
                hint="Use DatabaseStateAdapter or RedisStateAdapter in production.",
                id="chatstate.W001",
            )
        )
    extra = getattr(adapter, "check", None)
    if callable(extra):
        errors.extend(extra())
    return errors


@checks.register(checks.Tags.database)
def check_migrated(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Any]:
    """Warn (W003) when the database adapter's tables do not exist yet.

    Looked for by a plain ``manage.py check`` and by ``check --database <alias>``, on the
    adapter's database. Never during ``migrate`` (whose checks run just before it creates
    the tables), nor in the checks of other commands (``runserver``, ``collectstatic``, …),
    which need not reach the database. A database that cannot be reached reports nothing
    here (connecting is not this check's subject). A warning, not an error, so nothing it
    reports stops a command.
    """
    from chatstate.adapters.database import DatabaseStateAdapter
    from chatstate.registry import adapter_class

    cfg = conf.chatstate_settings()
    try:
        if not issubclass(adapter_class(cfg["ADAPTER"]), DatabaseStateAdapter):
            return []
    except (ImportError, TypeError, ValueError):
        return []
    alias = cfg["DATABASE"] or "default"
    if alias not in connections:
        return []
    command = sys.argv[1:2]
    if command == ["migrate"]:
        return []
    if databases is None:
        if command != ["check"]:
            return []
    elif alias not in databases:
        return []
    try:
        tables = connections[alias].introspection.table_names()
    except DatabaseError:
        return []
    if "chatstate_lock" not in tables:
        return [
            checks.Warning(
                f"chatstate's tables are missing from database {alias!r}: the database "
                "adapter will fail until its migrations are applied.",
                hint=f"Run: manage.py migrate chatstate --database {alias}",
                id="chatstate.W003",
            )
        ]
    return []
