"""The PostgreSQL functions of version 2 (claims with a lease, drain, keep-alive, bounded and
expiring queues, claims per minute), a frozen copy in ``sql/0008_functions_v2.sql``, replace
version 1 (a no-op on other databases)."""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0007_trigram_search")]

    operations = [RunPostgreSQLFile("0008_functions_v2.sql", "0008_functions_v2.reverse.sql")]
