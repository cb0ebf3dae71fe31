"""The PostgreSQL functions of version 9 (a frozen copy in ``sql/0020_functions_v9.sql``): a
warm session plans none of a cycle's statements again (a no-op on other databases)."""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0019_functions_v8")]

    # Reversed: version 8 from its own frozen copy (the signatures did not change).
    operations = [RunPostgreSQLFile("0020_functions_v9.sql", "0019_functions_v8.sql")]
