"""The PostgreSQL functions of version 8 (a frozen copy in ``sql/0019_functions_v8.sql``): a
cycle's entry returns its claim's row id, and its commit and drain steps find the claim by it,
whatever the dedupe table's statistics say (a no-op on other databases)."""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0018_functions_v7")]

    # Reversed: version 8's new signatures dropped, then version 7 from its own frozen copy.
    operations = [
        RunPostgreSQLFile(
            "0019_functions_v8.sql", "0019_functions_v8.reverse.sql", "0018_functions_v7.sql"
        )
    ]
