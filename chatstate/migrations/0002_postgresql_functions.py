"""Install the PL/pgSQL functions of the PostgreSQL fast path (no-op on other databases).

The functions are ``CREATE OR REPLACE``: a release that changes them ships a new migration
that runs ``install`` again.
"""

from django.db import migrations


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        from chatstate.adapters.pg import FUNCTIONS_SQL

        schema_editor.execute(FUNCTIONS_SQL, params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        from chatstate.adapters.pg import DROP_SQL

        schema_editor.execute(DROP_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
