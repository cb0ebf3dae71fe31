"""Trigram indexes for the admin's substring search on ids (PostgreSQL with pg_trgm only).

Where the ``pg_trgm`` extension exists or can be created (it is a trusted extension since
PostgreSQL 13: the database owner, or any role with CREATE on the database, may create it),
GIN trigram indexes on the id columns of the tables that grow large let the admin find an id
by any part of it (``C-support`` finds ``slack:C-support:1700000000.1``) through an index.
On other databases, or where the extension cannot be created (not installed on the server,
or no privilege), this migration does nothing and the admin keeps its exact/prefix search.

The indexes are built ``CONCURRENTLY`` (so the migration is not atomic): a live table keeps
taking writes while they build. To add them after installing ``pg_trgm`` on a database
where this migration already ran::

    manage.py migrate chatstate 0006 && manage.py migrate chatstate

The lock and pending-entry tables get none: they hold live locks and queued messages only,
are searched by a scan, and are written on every message cycle.
"""

from django.db import migrations

from chatstate.migrations import extension_schema

#: (table, column, index name); ``chatstate.admin.search.TRIGRAM_INDEXES`` names the same.
INDEXES = [
    ("chatstate_subscription", "thread_id", "chatstate_subscription_trgm"),
    ("chatstate_threadstate", "thread_id", "chatstate_threadstate_trgm"),
    ("chatstate_channelstate", "channel_id", "chatstate_channelstate_trgm"),
    ("chatstate_dedupeentry", "message_id", "chatstate_dedupe_message_trgm"),
]

CREATE_EXTENSION = """DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'chatstate: pg_trgm cannot be created (%%): the admin searches ids '
        'by exact value or prefix', SQLERRM;
END
$$"""


def invalid_indexes(connection):
    """Names of our trigram indexes left invalid by an interrupted concurrent build."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
            " WHERE c.relname = ANY(%s) AND NOT i.indisvalid AND pg_table_is_visible(c.oid)",
            [[name for _, _, name in INDEXES]],
        )
        return {row[0] for row in cursor.fetchall()}


def create_indexes(schema_editor):
    """Create the extension if allowed, then the indexes if the extension exists."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    qn = schema_editor.quote_name
    schema_editor.execute(CREATE_EXTENSION)
    if schema_editor.collect_sql:  # sqlmigrate: print what runs where pg_trgm exists
        schema_editor.execute("-- the statements below run where the pg_trgm extension exists", params=None)
        opclass = "gin_trgm_ops"
    else:
        schema = extension_schema(connection)
        if schema is None:
            return
        opclass = f"{qn(schema)}.gin_trgm_ops"
        for name in invalid_indexes(connection):
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {qn(name)}")
    for table, column, name in INDEXES:
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {qn(name)} ON {qn(table)}"
            f" USING gin ({qn(column)} {opclass})"
        )


def drop_indexes(schema_editor):
    """Drop the indexes (the extension stays: other apps may use it)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    for _, _, name in INDEXES:
        schema_editor.execute(
            f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}"
        )


class TrigramSearchIndexes(migrations.operations.base.Operation):
    """Indexes outside Django's model state: present only where PostgreSQL can hold them."""

    reduces_to_sql = True
    reversible = True

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        create_indexes(schema_editor)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        drop_indexes(schema_editor)

    def describe(self):
        return "Trigram indexes for the admin's id search (PostgreSQL with pg_trgm only)"


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("chatstate", "0006_claim_minute")]

    operations = [TrigramSearchIndexes()]
