"""The PostgreSQL functions of version 16 (a frozen copy in ``sql/0028_functions_v16.sql``).

A cycle inserts a free lock and a new thread's state row plainly, in a block of their own,
not as upserts. An upsert looks its key up before it inserts, then confirms its row: 3
buffers and a WAL record more each. A key taken meanwhile makes the insert fail, and the
call decides as before. No signature changes.
"""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0027_functions_v15")]

    # Reversed: version 15's copy (it drops and recreates what it changes).
    operations = [RunPostgreSQLFile("0028_functions_v16.sql", "0027_functions_v15.sql")]
