"""The PostgreSQL functions of version 3 (a cycle that acquires its thread commits its claim
and lock without waiting for the WAL flush), a frozen copy in ``sql/0010_functions_v3.sql``,
replace version 2 (a no-op on other databases)."""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0009_exact_ids_on_mysql")]

    # Reversed, version 2 comes back from its own frozen copy (its DROPs of version 1 are no-ops).
    operations = [RunPostgreSQLFile("0010_functions_v3.sql", "0008_functions_v2.sql")]
