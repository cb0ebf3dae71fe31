"""The benchmark's namespace: filled with ``history`` before a run, emptied after it."""

from __future__ import annotations

from typing import Any

from bench.cycles import Config, make_adapters, namespaces, thread_ids


def prefill_history(config: Config) -> None:
    """Put ``history`` dedupe keys (positions 1..K, window head K) and thread states in the
    namespace, in a few set-based statements (PostgreSQL) or batched inserts (elsewhere)."""
    history = config["history"]
    if not history or config["adapter"] != "database":
        return
    from django.db import connections, transaction

    from chatstate.models import DedupeEntry, DedupeWindow, ThreadState

    ns, using = config["namespace"], config["using"]
    connection = connections[using]
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO chatstate_dedupeentry"
                    " (namespace, adapter, message_id, seq, created_at)"
                    " SELECT %s, 'history', 'h' || i, i, now() FROM generate_series(1, %s) i",
                    (ns, history),
                )
                cursor.execute(
                    "INSERT INTO chatstate_threadstate (namespace, thread_id, value, updated_at)"
                    " SELECT %s, 'history-t' || i, jsonb_build_object('n', i), now()"
                    " FROM generate_series(1, %s) i",
                    (ns, history),
                )
        else:
            for start in range(0, history, 5000):
                stop = min(history, start + 5000)
                DedupeEntry.objects.using(using).bulk_create(
                    DedupeEntry(namespace=ns, adapter="history", message_id=f"h{i}", seq=i)
                    for i in range(start + 1, stop + 1)
                )
                ThreadState.objects.using(using).bulk_create(
                    ThreadState(namespace=ns, thread_id=f"history-t{i}", value={"n": i})
                    for i in range(start + 1, stop + 1)
                )
        DedupeWindow.objects.using(using).update_or_create(namespace=ns, defaults={"head": history})


def fill_histories(adapter: Any, config: Config, workers: range) -> None:
    """With ``--effects``: fill the history of each thread of ``workers`` to its limit.

    A deployment's histories are full, so each append also trims the oldest item; a run's
    appends do so from its first cycle. One statement on PostgreSQL's fast path; elsewhere
    the adapter's own appends."""
    if not config.get("effects"):
        return
    from chatstate.validation import history_key

    limit = adapter.history_limit
    keys = [history_key(thread) for w in workers for thread in thread_ids(w)]
    if config["adapter"] == "database" and config["database_vendor"] == "postgresql":
        from django.db import connections

        with connections[config["using"]].cursor() as cursor:
            cursor.execute(
                "WITH heads AS (INSERT INTO chatstate_listhead"
                " (namespace, key, last_seq, first_seq, updated_at)"
                " SELECT %s, k, %s, 1, now() FROM unnest(%s::text[]) k RETURNING key)"
                " INSERT INTO chatstate_listitem (namespace, key, seq, value)"
                " SELECT %s, key, s, jsonb_build_object('role', 'user', 'n', s - %s - 1)"
                " FROM heads, generate_series(1, %s) s",
                (adapter.namespace, limit, keys, adapter.namespace, limit, limit),
            )
        return
    for key in keys:
        for position in range(1, limit + 1):  # items -limit .. -1, oldest first
            item = {"role": "user", "n": position - limit - 1}
            adapter.append_to_list(key, item, max_length=limit)


def vacuum_tables(cursor: Any, pattern: str) -> None:
    """``VACUUM ANALYZE`` the tables named like ``pattern``, on an autocommit connection.

    Each run then starts without dead rows and with fresh statistics, as autovacuum keeps a
    busy server. A server with autovacuum off would otherwise measure earlier runs' rows."""
    cursor.execute(
        "SELECT quote_ident(relname) FROM pg_class WHERE relkind = 'r' AND relname LIKE %s"
        " AND pg_table_is_visible(oid)",
        (pattern,),
    )
    for (table,) in cursor.fetchall():
        cursor.execute(f"VACUUM ANALYZE {table}")


def vacuum(config: Config) -> None:
    """PostgreSQL: chatstate's tables vacuumed and analyzed before a run."""
    if config["adapter"] != "database":
        return
    from django.db import connections

    connection = connections[config["using"]]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            vacuum_tables(cursor, "chatstate\\_%")


def clear_namespace(config: Config) -> None:
    """Remove everything the run put in its namespace (database: its rows)."""
    if config["adapter"] == "database":
        from django.apps import apps
        from django.db import transaction

        with transaction.atomic(using=config["using"]):
            for model in apps.get_app_config("chatstate").get_models():
                if any(field.name == "namespace" for field in model._meta.fields):
                    model._default_manager.using(config["using"]).filter(
                        namespace__in=namespaces(config)
                    ).delete()
    elif config["adapter"] == "redis":
        for adapter in make_adapters(config):
            clear = getattr(adapter, "clear", None)
            if clear is not None:
                clear()
