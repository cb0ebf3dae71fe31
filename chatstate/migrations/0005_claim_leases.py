"""Dedupe claims with a lease: a dedupe entry is *in progress* (owner, thread, expiry) while a
message cycle handles it, and done (owner NULL) once its commit ran. On PostgreSQL, the
functions of version 2 (``sql/0005_claim_leases.sql``, a frozen copy) replace version 1."""

from django.db import migrations, models

from chatstate.migrations import RunPostgreSQLFile


class Migration(migrations.Migration):
    dependencies = [("chatstate", "0004_dedupe_order_index")]

    operations = [
        migrations.AddField(
            model_name="dedupeentry",
            name="owner",
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AddField(
            model_name="dedupeentry",
            name="thread_id",
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AddField(
            model_name="dedupeentry",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="lock",
            name="ttl",
            field=models.FloatField(blank=True, null=True),
        ),
        RunPostgreSQLFile("0005_claim_leases.sql", "0005_claim_leases.reverse.sql"),
    ]
