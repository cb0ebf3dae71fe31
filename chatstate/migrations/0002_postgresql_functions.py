"""Install the PL/pgSQL functions of the PostgreSQL fast path (a no-op on other databases).

The functions are a frozen copy (``sql/0002_postgresql_functions.sql``) of what this migration
installed when it was released; later migrations replace them with their own frozen copies.
"""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0001_initial")]

    operations = [
        RunPostgreSQLFile(
            "0002_postgresql_functions.sql", "0002_postgresql_functions.reverse.sql"
        )
    ]
