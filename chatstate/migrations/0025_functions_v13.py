"""The PostgreSQL functions of version 13 (a frozen copy in ``sql/0025_functions_v13.sql``).

A full window's claim dropped the key at position (its own - limit). After a claim was
withdrawn from the middle of the window, that key could be newer than the oldest: the window
lost a key it should keep, and kept one it should drop. The window row now keeps the newest
position a withdrawal emptied (``gap``); until the window has moved past it, a claim drops
the oldest key. The field is added on every database: the ORM path and the admin record it too.
"""

from django.db import migrations, models

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0024_functions_v12")]

    # Reversed: version 12's copy (it drops nothing that exists), then the field.
    operations = [
        migrations.AddField(
            model_name="dedupewindow",
            name="gap",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        RunPostgreSQLFile("0025_functions_v13.sql", "0024_functions_v12.sql"),
    ]
