"""The PostgreSQL functions of version 5 (a frozen copy in ``sql/0015_functions_v5.sql``): a
cycle's functions keep their plans for the session and run fewer statements; the window row
notes the minute whose claims-per-minute row was written; the lock table loses its
secondary indexes, which every cycle wrote (its rows are inserted and deleted by each cycle)."""

from django.db import migrations, models

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0014_functions_v4")]

    # Reversed: version 4 from its own frozen copy (the signatures did not change).
    operations = [
        migrations.RemoveIndex(model_name="lock", name="chatstate_lock_expiry"),
        migrations.RemoveIndex(model_name="lock", name="chatstate_lock_strategy"),
        migrations.RemoveIndex(model_name="lock", name="chatstate_lock_owner"),
        migrations.AddField(
            model_name="dedupewindow",
            name="minute",
            field=models.DateTimeField(blank=True, null=True),
        ),
        RunPostgreSQLFile("0015_functions_v5.sql", "0014_functions_v4.sql"),
    ]
