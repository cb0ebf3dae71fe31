"""The PostgreSQL functions of version 14 (a frozen copy in ``sql/0026_functions_v14.sql``).

A cycle's commit under a lock marks its claim done in one statement that checks the claim is
still its own, instead of locking the claim's row first: one WAL record fewer per message.
When the lock turns out to be gone, the claim is put back as it was.
"""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0025_functions_v13")]

    operations = [RunPostgreSQLFile("0026_functions_v14.sql", "0025_functions_v13.sql")]
