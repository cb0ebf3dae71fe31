"""An outbox entry's attempts in a 64-bit integer, as snapshots carry them (up to 2**63 - 1)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('chatstate', '0011_lists_and_outbox'),
    ]

    operations = [
        migrations.AlterField(
            model_name='outboxmessage',
            name='attempts',
            field=models.BigIntegerField(default=0),
        ),
    ]
