"""The PostgreSQL functions of version 15 (a frozen copy in ``sql/0027_functions_v15.sql``).

A cycle's entry returns where its claim's and its lock's rows lie (their ``ctid``), and its
commit looks for them there first. Marking the claim done read the primary key's index, and
deleting the lock the lock's unique index. A row a renewal rewrote since the entry has moved:
it is then looked up by key, as before. ``chatstate_claim`` and ``chatstate_lock`` return
their row's address too, so five functions change their signature: their version 14 is
dropped first.
"""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0026_functions_v14")]

    # Reversed: version 15's changed functions dropped, then version 14's copy.
    operations = [
        RunPostgreSQLFile(
            "0027_functions_v15.sql", "0027_functions_v15.reverse.sql", "0026_functions_v14.sql"
        )
    ]
