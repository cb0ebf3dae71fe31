"""The PostgreSQL functions of version 7 (a frozen copy in ``sql/0018_functions_v7.sql``): the
functions Python calls plan with sequential scans off, so that a plan made while a table looked
empty does not scan the whole table on every later call."""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0017_no_message_id_trigram")]

    # Reversed: version 6 from its own frozen copy (the signatures did not change).
    operations = [RunPostgreSQLFile("0018_functions_v7.sql", "0016_functions_v6.sql")]
