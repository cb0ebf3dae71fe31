"""The dedupe table's trigram index on message ids is dropped (PostgreSQL only).

Every claim wrote it: about 490 WAL bytes and two buffers of each message's cycle, for an
admin search by any fragment of a message id. Without it the admin still finds a message id
exactly, by prefix (``1700000000*``) and by its parts. A deployment that wants fragments back
builds the index again; the admin uses it once it exists (docs/operations.rst)::

    CREATE INDEX CONCURRENTLY chatstate_dedupe_message_trgm
        ON chatstate_dedupeentry USING gin (message_id gin_trgm_ops);

Reversed, the index is built again where the ``pg_trgm`` extension exists.
"""

from django.db import migrations

INDEX = "chatstate_dedupe_message_trgm"


class DropMessageIdTrigram(migrations.operations.base.Operation):
    """An index outside Django's model state, on PostgreSQL only."""

    reduces_to_sql = True
    reversible = True

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT n.nspname FROM pg_extension e"
                " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
            )
            row = cursor.fetchone()
        if row is not None:
            opclass = f"{schema_editor.quote_name(row[0])}.gin_trgm_ops"
            schema_editor.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX}"
                f" ON chatstate_dedupeentry USING gin (message_id {opclass})"
            )

    def describe(self):
        return "Drop the trigram index of message ids (PostgreSQL only)"


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("chatstate", "0016_functions_v6")]

    operations = [DropMessageIdTrigram()]
