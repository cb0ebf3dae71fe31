"""Capped lists (thread histories among them) and the outbox; on MariaDB/MySQL their id
columns compare byte for byte, as 0009 made the others."""

import importlib

from django.db import migrations, models

#: (table, column, length, nullable): the id columns of the new tables.
ID_COLUMNS = [
    ("chatstate_listhead", "namespace", 255, False),
    ("chatstate_listhead", "key", 320, False),
    ("chatstate_listitem", "namespace", 255, False),
    ("chatstate_listitem", "key", 320, False),
    ("chatstate_outboxmessage", "namespace", 255, False),
    ("chatstate_outboxmessage", "key", 255, False),
    ("chatstate_outboxmessage", "thread_id", 255, False),
    ("chatstate_outboxmessage", "lease_owner", 255, True),
]


def exact_ids(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "mysql":
        return
    exact = importlib.import_module("chatstate.migrations.0009_exact_ids_on_mysql")
    collation = exact.exact_collation(connection)
    quote = schema_editor.quote_name
    for table in dict.fromkeys(table for table, _, _, _ in ID_COLUMNS):
        changes = ", ".join(
            f"MODIFY {quote(column)} varchar({length}) CHARACTER SET utf8mb4 COLLATE {collation}"
            f" {'NULL' if null else 'NOT NULL'}"
            for name, column, length, null in ID_COLUMNS
            if name == table
        )
        schema_editor.execute(f"ALTER TABLE {quote(table)} {changes}")


class Migration(migrations.Migration):

    dependencies = [
        ('chatstate', '0010_functions_v3'),
    ]

    operations = [
        migrations.CreateModel(
            name='ListHead',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('namespace', models.CharField(max_length=255)),
                ('key', models.CharField(max_length=320)),
                ('last_seq', models.BigIntegerField(default=0)),
                ('expires_at', models.DateTimeField(blank=True, null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name': 'list',
                'constraints': [models.UniqueConstraint(fields=('namespace', 'key'), name='chatstate_list_unique')],
            },
        ),
        migrations.CreateModel(
            name='ListItem',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('namespace', models.CharField(max_length=255)),
                ('key', models.CharField(max_length=320)),
                ('seq', models.BigIntegerField()),
                ('value', models.JSONField()),
            ],
            options={
                'verbose_name': 'list item',
                'constraints': [models.UniqueConstraint(fields=('namespace', 'key', 'seq'), name='chatstate_listitem_unique')],
            },
        ),
        migrations.CreateModel(
            name='OutboxMessage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('namespace', models.CharField(max_length=255)),
                ('key', models.CharField(max_length=255)),
                ('thread_id', models.CharField(max_length=255)),
                ('payload', models.JSONField()),
                ('attempts', models.IntegerField(default=0)),
                ('dead', models.BooleanField(default=False)),
                ('created_at', models.DateTimeField()),
                ('due_at', models.DateTimeField()),
                ('lease_owner', models.CharField(blank=True, max_length=255, null=True)),
                ('lease_until', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'verbose_name': 'outbox entry',
                'verbose_name_plural': 'outbox',
                'indexes': [models.Index(fields=['namespace', 'thread_id', 'id'], name='chatstate_outbox_thread'), models.Index(fields=['namespace', 'id'], name='chatstate_outbox_order')],
                'constraints': [models.UniqueConstraint(fields=('namespace', 'key'), name='chatstate_outbox_unique')],
            },
        ),
        migrations.RunPython(exact_ids, migrations.RunPython.noop, atomic=False, elidable=False),
    ]
