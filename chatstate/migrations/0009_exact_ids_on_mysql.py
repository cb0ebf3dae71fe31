"""Exact ids on MariaDB/MySQL: every id column compares byte for byte (a no-op elsewhere).

MariaDB and MySQL give a ``varchar`` the database's default collation, usually a
case- and accent-insensitive one that ignores trailing spaces (``utf8mb4_general_ci``): there
``("tg", "MsgA")`` and ``("tg", "msga")`` would be one dedupe key, ``lock("K")`` would make
``lock("k")`` busy and ``"abc "`` would be subscribed with ``"abc"``. This migration gives every
id column of chatstate's tables a binary collation without trailing-space padding — the
first the server has of ``utf8mb4_nopad_bin`` (MariaDB), ``utf8mb4_0900_bin`` (MySQL 8) and
``utf8mb4_bin`` (older servers, which pad: there ``"abc "`` still equals ``"abc"``).

Reversing it drops the explicit collation (the columns take their table's default again).
The models do not declare the collation (``db_collation`` would be emitted on every
database), so a later migration that alters one of these columns must set it again on MySQL.
"""

from django.db import migrations

#: (table, column, nullable): every id column of chatstate's tables.
ID_COLUMNS = [
    ("chatstate_subscription", "namespace", False),
    ("chatstate_subscription", "thread_id", False),
    ("chatstate_dedupeentry", "namespace", False),
    ("chatstate_dedupeentry", "adapter", False),
    ("chatstate_dedupeentry", "message_id", False),
    ("chatstate_dedupeentry", "owner", True),
    ("chatstate_dedupeentry", "thread_id", True),
    ("chatstate_dedupewindow", "namespace", False),
    ("chatstate_threadstate", "namespace", False),
    ("chatstate_threadstate", "thread_id", False),
    ("chatstate_channelstate", "namespace", False),
    ("chatstate_channelstate", "channel_id", False),
    ("chatstate_lock", "namespace", False),
    ("chatstate_lock", "key", False),
    ("chatstate_lock", "owner", False),
    ("chatstate_pendinglockentry", "namespace", False),
    ("chatstate_pendinglockentry", "key", False),
    ("chatstate_pendinglockentry", "owner", False),
    ("chatstate_claimminute", "namespace", False),
]
#: The exact collations, best first.
COLLATIONS = ["utf8mb4_nopad_bin", "utf8mb4_0900_bin", "utf8mb4_bin"]


def exact_collation(connection):
    """The first of ``COLLATIONS`` the MariaDB/MySQL server behind ``connection`` has."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COLLATION_NAME FROM information_schema.COLLATIONS"
            f" WHERE COLLATION_NAME IN ({', '.join(['%s'] * len(COLLATIONS))})",
            COLLATIONS,
        )
        found = {row[0] for row in cursor.fetchall()}
    return next(name for name in COLLATIONS if name in found)


def _alter(schema_editor, collation):
    connection = schema_editor.connection
    if connection.vendor != "mysql":
        return
    collate = f" CHARACTER SET utf8mb4 COLLATE {collation}" if collation else ""
    quote = schema_editor.quote_name
    tables = dict.fromkeys(table for table, _, _ in ID_COLUMNS)
    for table in tables:
        changes = ", ".join(
            f"MODIFY {quote(column)} varchar(255){collate} {'NULL' if null else 'NOT NULL'}"
            for name, column, null in ID_COLUMNS
            if name == table
        )
        schema_editor.execute(f"ALTER TABLE {quote(table)} {changes}")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "mysql":
        _alter(schema_editor, exact_collation(schema_editor.connection))


def backwards(apps, schema_editor):
    _alter(schema_editor, None)


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0008_functions_v2")]

    # MySQL cannot roll DDL back: the ALTERs run outside a transaction.
    operations = [migrations.RunPython(forwards, backwards, atomic=False, elidable=False)]
