"""The PostgreSQL functions of version 6 (a frozen copy in ``sql/0016_functions_v6.sql``): a
list append advances a live list's head in one statement; an integer channel increment is
summed without a function call; a commit's single list append runs without a sort."""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0015_functions_v5")]

    # Reversed: version 5 from its own frozen copy (the signatures did not change).
    operations = [RunPostgreSQLFile("0016_functions_v6.sql", "0015_functions_v5.sql")]
