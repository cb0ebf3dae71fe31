"""The PostgreSQL functions of version 16 (a frozen copy in ``sql/0028_functions_v16.sql``).

A claim of a key that is already done reads it without locking it. The lock was a WAL
record, and so a durable commit, on every redelivery of a handled message.
"""

from django.db import migrations

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0027_functions_v15")]

    operations = [RunPostgreSQLFile("0028_functions_v16.sql", "0027_functions_v15.sql")]
