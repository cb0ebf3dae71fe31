"""The thread states' trigram index on thread ids is dropped (PostgreSQL only).

A message cycle on a new thread wrote it: about 490 WAL bytes and two to three buffers. Many
bots start a thread with most messages they answer, so this is most cycles' cost. Without it
the admin still finds a thread id exactly, by prefix (``slack:C-support:*``) and by its
parts: ``C-support`` finds the channel's threads. A deployment that wants fragments back
builds the index again; the admin uses it once it exists (docs/operations.rst)::

    CREATE INDEX CONCURRENTLY chatstate_threadstate_trgm
        ON chatstate_threadstate USING gin (thread_id gin_trgm_ops);

Channel states and subscriptions keep theirs: a channel's row is new far less often than a
thread's, and a subscription is written by a subscribe, not by a message cycle.
Reversed, the index is built again where the ``pg_trgm`` extension exists.
"""

from django.db import migrations

from chatstate.migrations import DropTrigramIndex


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("chatstate", "0022_functions_v11")]

    operations = [
        DropTrigramIndex("chatstate_threadstate", "thread_id", "chatstate_threadstate_trgm")
    ]
