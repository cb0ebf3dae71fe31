"""Dedupe claims with a lease: a dedupe entry is *in progress* (owner, thread, expiry) while a
message cycle handles it, and done (owner NULL) once its commit ran. A lock keeps its lease
(``ttl``) for renewals."""

from django.db import migrations, models


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
    ]
