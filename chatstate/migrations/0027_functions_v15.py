"""The PostgreSQL functions of version 15 (a frozen copy in ``sql/0027_functions_v15.sql``).

Claims that run at the same time can share a position in the dedupe window, and then both
look for the same key to drop. The one that finds it taken now waits briefly for the call
that holds it, then drops the window's oldest key from there up. Until now it counted and
trimmed under the window row, which all busy claims of a namespace queue on.
"""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0026_functions_v14")]

    # Reversed: the new function dropped, then version 14's copy.
    operations = [
        RunPostgreSQLFile(
            "0027_functions_v15.sql", "0027_functions_v15.reverse.sql", "0026_functions_v14.sql"
        )
    ]
