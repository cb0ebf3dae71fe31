"""The message-cycle benchmark behind ``manage.py chatstate_bench`` (operators size a
database or a Redis with it): :func:`build_config` checks the options, :func:`run_bench` runs
the worker processes and returns the figures (:data:`FIELDS`); :func:`run_outbox_bench`
measures the outbox's dispatch."""

from chatstate.bench.outbox import outbox_config, run_outbox_bench
from chatstate.bench.runner import ADAPTERS, FIELDS, MODES, build_config, run_bench
from chatstate.bench.table import format_table

__all__ = [
    "ADAPTERS",
    "FIELDS",
    "MODES",
    "build_config",
    "format_table",
    "outbox_config",
    "run_bench",
    "run_outbox_bench",
]
