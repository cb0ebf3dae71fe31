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

from chatstate.migrations import DropTrigramIndex


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("chatstate", "0016_functions_v6")]

    operations = [
        DropTrigramIndex("chatstate_dedupeentry", "message_id", "chatstate_dedupe_message_trgm")
    ]
