"""The message-cycle benchmark behind ``manage.py chatstate_bench`` (operators size a
database or a Redis with it): :func:`build_config` checks the options, :func:`run_bench` runs
the worker processes and returns the figures (:data:`FIELDS`)."""

from chatstate.bench.runner import ADAPTERS, FIELDS, MODES, build_config, run_bench
from chatstate.bench.table import format_table

__all__ = ["ADAPTERS", "FIELDS", "MODES", "build_config", "format_table", "run_bench"]
