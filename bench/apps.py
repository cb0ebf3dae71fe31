"""The benchmark as a Django app of the source tree: ``manage.py chatstate_bench``."""

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "bench"
    verbose_name = "chatstate benchmark"
