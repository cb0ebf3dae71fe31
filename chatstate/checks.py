"""System checks: ``manage.py check`` reports a misconfigured ``CHATSTATE``.

It also reports chatstate's missing tables (W003) before ``migrate``."""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import DatabaseError, connections

from chatstate import conf
from chatstate.adapters.database.vendors import vendor_of

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
    errors.extend(adapter._do_check())
    return errors


def _database_alias() -> str | None:
    """The alias the configured database adapter uses; None for another adapter."""
    from chatstate.adapters.database import DatabaseStateAdapter
    from chatstate.registry import adapter_class

    cfg = conf.chatstate_settings()
    try:
        if not issubclass(adapter_class(cfg["ADAPTER"]), DatabaseStateAdapter):
            return None
    except (ImportError, TypeError, ValueError):
        return None
    alias = cfg["DATABASE"] or "default"
    return alias if alias in connections else None


def _tables_missing(alias: str) -> list[checks.CheckMessage]:
    """W003 when chatstate's tables are missing from ``alias``; nothing if unreachable."""
    try:
        tables = connections[alias].introspection.table_names()
    except DatabaseError:
        return []  # reaching the database is not this check's subject
    if "chatstate_lock" in tables:
        return []
    # A warning, not an error: nothing it reports stops a command (``migrate`` above all).
    return [
        checks.Warning(
            f"chatstate's tables are missing from database {alias!r}: the database "
            "adapter will fail until its migrations are applied.",
            hint=f"Run: manage.py migrate chatstate --database {alias}",
            id="chatstate.W003",
        )
    ]


def _command() -> list[str]:
    """The management command of this process's command line, such as ``["check"]``, if any."""
    return sys.argv[1:2]


@checks.register(checks.Tags.database)
def check_migrated(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Any]:
    """Database checks: W003 when the database adapter's tables do not exist yet.

    These run with ``check --database <alias>``, as the test runner does. They never run
    during ``migrate``, whose checks run just before it creates the tables."""
    alias = _database_alias()
    if alias is None or not databases or alias not in databases or _command() == ["migrate"]:
        return []
    return _tables_missing(alias)


@checks.register()
def check_migrated_before_migrate(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """A plain ``manage.py check``, without ``--database``, reports W003 too.

    It checks the adapter's database. It is the check a new user runs before ``migrate``.
    Other commands' checks, like ``runserver`` or ``collectstatic``, never reach the
    database for it. With ``--database``, :func:`check_migrated` reports it, once."""
    argv = sys.argv[2:]
    if _command() != ["check"] or any(arg.startswith("--database") for arg in argv):
        return []
    alias = _database_alias()
    return [] if alias is None else _tables_missing(alias)


@checks.register(checks.Tags.database)
def check_functions(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Any]:
    """With ``--database``: an error when the installed PostgreSQL functions are not this code's.

    That happens to a database migrated by another release, or to functions dropped by hand.
    They are compared once, here. The check is quiet until chatstate's migrations are all
    applied. ``migrate`` installs the functions, and runs these checks before it does."""
    from django.db.migrations.loader import MigrationLoader

    from chatstate.adapters.database import DatabaseStateAdapter
    from chatstate.adapters.database.postgres import (
        FUNCTIONS_VERSION,
        installed_functions_version,
    )
    from chatstate.registry import adapter_class

    cfg = conf.chatstate_settings()
    try:
        if not issubclass(adapter_class(cfg["ADAPTER"]), DatabaseStateAdapter):
            return []
    except (ImportError, TypeError, ValueError):
        return []
    options = cfg["OPTIONS"] if isinstance(cfg["OPTIONS"], dict) else {}
    alias = options.get("using") or cfg["DATABASE"] or "default"
    if not databases or alias not in databases or alias not in connections:
        return []
    connection = connections[alias]
    if not vendor_of(connection).has_functions or options.get("fast_sql") is False:
        return []
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    if not set(loader.graph.leaf_nodes("chatstate")) <= set(loader.applied_migrations):
        return []
    installed = installed_functions_version(alias)
    if installed == FUNCTIONS_VERSION:
        return []
    return [
        checks.Error(
            f"The chatstate functions in database {alias!r} are version {installed or 1}; "
            f"this chatstate calls version {FUNCTIONS_VERSION}.",
            hint="Install them with the migration that ships them: manage.py migrate "
            f"chatstate --database {alias} (or, by hand, the SQL of manage.py sqlmigrate "
            "chatstate <its name>). If the migration is recorded as applied, unapply and "
            "reapply it.",
            id="chatstate.E006",
        )
    ]


@checks.register(deploy=True)
def check_persistence(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """With ``--deploy``: warn when the Redis adapter's server keeps no append-only file.

    A restart would then forget claims, locks and queues."""
    from chatstate.registry import build_adapter
    from chatstate.types import ChatStateError

    try:
        adapter = build_adapter()
    except (ImportError, TypeError, ValueError):
        return []
    try:
        info = adapter._do_persistence()
    except (ChatStateError, OSError, Exception):  # unreachable: not this check's to say
        return []
    if info is None or int(info.get("aof_enabled", 0)):
        return []
    return [
        checks.Warning(
            f"The Redis server of cache alias {getattr(adapter, 'alias', '?')!r} keeps no "
            "append-only file: a restart forgets chatstate's claims, locks and queues (a "
            "message could then be answered twice, or a queued one lost).",
            hint="Run Redis with appendonly yes and appendfsync everysec (at most a second of "
            "writes lost in a crash) or always; see the README's Redis section.",
            id="chatstate.W004",
        )
    ]
