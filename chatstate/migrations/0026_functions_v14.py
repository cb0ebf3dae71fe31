"""The PostgreSQL functions of version 14 (a frozen copy in ``sql/0026_functions_v14.sql``).

Three changes to the hot path, none to a signature:

- A cycle's commit under a lock marks its claim done in one statement that checks the claim
  is still its own, instead of locking the claim's row first: one WAL record fewer. When the
  lock turns out to be gone, the claim is put back as it was.
- Claims that run at the same time can share a position in the dedupe window, and then both
  look for the same key to drop. The one that finds it taken waits briefly for the call that
  holds it, then drops the window's oldest key from there up, instead of counting under the
  window row that every busy claim of a namespace queues on.
- A claim of a key already done reads it without locking it: a redelivery of a handled
  message writes no WAL and waits for no flush.
"""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0025_functions_v13")]

    # Reversed: the new function dropped, then version 13's copy.
    operations = [
        RunPostgreSQLFile(
            "0026_functions_v14.sql", "0026_functions_v14.reverse.sql", "0025_functions_v13.sql"
        )
    ]
