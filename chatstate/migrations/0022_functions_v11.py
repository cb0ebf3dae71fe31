"""The PostgreSQL functions of version 11 (a frozen copy in ``sql/0022_functions_v11.sql``):
a commit writes its list appends and a single channel increment in its own statements, and
advances a live list's head with an ``UPDATE`` (a no-op on other databases)."""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0021_functions_v10")]

    # Reversed: version 10 from its own frozen copy (the signatures did not change).
    operations = [RunPostgreSQLFile("0022_functions_v11.sql", "0021_functions_v10.sql")]
