"""Slots (capped ``concurrent``): their holders on the key's lock row, the hand-out marks on
queued entries; on MariaDB/MySQL the new id column compares byte for byte, as 0009 made the
others. On PostgreSQL, a partial index of the leased outbox entries: the outbox claim finds
the leased threads through it, whatever the planner's statistics say."""

import importlib

from django.db import migrations, models

#: (table, column, length, nullable): the new id columns.
ID_COLUMNS = [
    ("chatstate_pendinglockentry", "taken_by", 255, True),
]

LEASED_INDEX = (
    "CREATE INDEX IF NOT EXISTS chatstate_outbox_leased ON chatstate_outboxmessage"
    " (namespace, thread_id) WHERE lease_until IS NOT NULL"
)
DROP_LEASED_INDEX = "DROP INDEX IF EXISTS chatstate_outbox_leased"


def exact_ids(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "mysql":
        return
    exact = importlib.import_module("chatstate.migrations.0009_exact_ids_on_mysql")
    collation = exact.exact_collation(connection)
    quote = schema_editor.quote_name
    for table, column, length, null in ID_COLUMNS:
        schema_editor.execute(
            f"ALTER TABLE {quote(table)} MODIFY {quote(column)} varchar({length})"
            f" CHARACTER SET utf8mb4 COLLATE {collation} {'NULL' if null else 'NOT NULL'}"
        )


def leased_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(LEASED_INDEX)


def drop_leased_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_LEASED_INDEX)


class Migration(migrations.Migration):

    dependencies = [
        ('chatstate', '0012_outbox_attempts_64bit'),
    ]

    operations = [
        migrations.AddField(
            model_name='lock',
            name='holders',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='pendinglockentry',
            name='taken_by',
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.RunPython(exact_ids, migrations.RunPython.noop, atomic=False, elidable=False),
        migrations.RunPython(leased_index, drop_leased_index, elidable=False),
    ]
