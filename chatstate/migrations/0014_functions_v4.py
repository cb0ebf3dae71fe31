"""The PostgreSQL functions of version 4 (a frozen copy in ``sql/0014_functions_v4.sql``):
the dedupe window keeps every claim in progress, a commit checks its claim, and a cycle
queues its message behind entries a dead holder left (a no-op on other databases)."""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0013_slots_and_outbox_leases")]

    # Reversed: version 4's new signatures dropped, then version 3 from its own frozen copy.
    operations = [
        RunPostgreSQLFile(
            "0014_functions_v4.sql", "0014_functions_v4.reverse.sql", "0010_functions_v3.sql"
        )
    ]
