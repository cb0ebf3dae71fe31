"""The PostgreSQL functions of version 12 (a frozen copy in ``sql/0024_functions_v12.sql``):
a cycle's commit checks its lock by deleting it, in one statement, instead of locking its row
first; a full window's claim deletes the key that left it by its row's address (a no-op on
other databases)."""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0023_no_thread_id_trigram")]

    # Reversed: chatstate_settle's version 12 signature dropped, then version 11's copy.
    operations = [
        RunPostgreSQLFile(
            "0024_functions_v12.sql", "0024_functions_v12.reverse.sql", "0022_functions_v11.sql"
        )
    ]
