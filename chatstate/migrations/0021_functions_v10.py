"""Lists trim lazily. A list's head keeps its oldest position, ``first_seq``. The PostgreSQL
functions of version 10 (a frozen copy in ``sql/0021_functions_v10.sql``) delete the rows
below it in batches, not one on every append (a no-op on other databases)."""

from django.db import migrations, models

from chatstate.migrations import RunPostgreSQLFile

#: Each head starts at its oldest item: every row was kept until now.
SET_FIRST_SEQ = """
UPDATE chatstate_listhead SET first_seq = coalesce((
    SELECT min(i.seq) FROM chatstate_listitem i
    WHERE i.namespace = chatstate_listhead.namespace AND i.key = chatstate_listhead.key
), last_seq + 1)
"""

#: Back to every row being read (version 9): the rows below first_seq are deleted.
DELETE_TRIMMED = """
DELETE FROM chatstate_listitem WHERE EXISTS (
    SELECT 1 FROM chatstate_listhead h
    WHERE h.namespace = chatstate_listitem.namespace AND h.key = chatstate_listitem.key
        AND h.first_seq > chatstate_listitem.seq
)
"""


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0020_functions_v9")]

    # Reversed: version 10's new function dropped, version 9 from its own frozen copy, the
    # trimmed rows deleted, then the column.
    operations = [
        migrations.AddField(
            model_name="listhead", name="first_seq", field=models.BigIntegerField(default=1)
        ),
        migrations.RunSQL(SET_FIRST_SEQ, DELETE_TRIMMED, elidable=False),
        RunPostgreSQLFile(
            "0021_functions_v10.sql", "0021_functions_v10.reverse.sql", "0020_functions_v9.sql"
        ),
    ]
