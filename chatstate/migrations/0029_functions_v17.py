"""The PostgreSQL functions of version 17 (a frozen copy in ``sql/0029_functions_v17.sql``).

The five functions of a cycle return a row type of their own instead of OUT parameters: the
server no longer rebuilds their row type from the catalog on every call. A commit with
nothing pending checks that with one probe, and a cycle's entry reads its thread's
subscription and state in one statement. The functions' arguments and columns are unchanged.
"""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0028_functions_v16")]

    # Reversed: version 17's functions and row types dropped, then version 16's copy.
    operations = [
        RunPostgreSQLFile(
            "0029_functions_v17.sql", "0029_functions_v17.reverse.sql", "0028_functions_v16.sql"
        )
    ]
