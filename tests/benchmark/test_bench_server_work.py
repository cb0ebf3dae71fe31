"""``chatstate_bench --server-work``: it measures on a server with pg_stat_statements, refuses
clearly elsewhere, and prints one row per figure (the figures are never asserted)."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from bench import serverwork_pg


def test_the_table_has_a_column_per_side_and_their_ratio() -> None:
    side = dict.fromkeys((*serverwork_pg.FIELDS, "cpu_us"), 10.0)
    figures = {
        "server": "127.0.0.1:5499/bench",
        "rows": [
            {"who": "chatstate", "cycles": 5, **side, "buffers": 30.0, "top": [("q", 5.0, 50.0)]},
            {"who": "peer", "cycles": 5, **side, "buffers": 60.0, "top": []},
        ],
    }
    table = serverwork_pg.format_rows(figures)
    assert "| per message cycle | chatstate | peer | ratio |" in table
    assert "| shared buffers hit+read | 30.0 | 60.0 | 0.50× |" in table
    assert "| execution + planning (µs) | 20.0 | 20.0 | 1.00× |" in table
    assert "\n   1.00     10.0  q\n" in table  # 5 calls and 50 µs over 5 cycles


@pytest.mark.run_on("sqlite")
@pytest.mark.usefixtures("db")
def test_elsewhere_than_postgresql_it_refuses() -> None:
    with pytest.raises(CommandError, match="measures PostgreSQL"):
        call_command("chatstate_bench", server_work=True, cycles=5, stdout=StringIO())


@pytest.mark.run_on("postgresql")
def test_a_private_server_is_refused_then_measured(django_db_blocker: Any) -> None:
    """Without pg_stat_statements loaded it says what the server lacks; with it, it measures."""
    from django.db import connections

    from tests.faults.postgres_server import PostgresServer

    server, alias = PostgresServer(), "server_work"
    connections.databases[alias] = {
        **connections.databases["default"], "HOST": "127.0.0.1", "PORT": str(server.port),
        "NAME": "postgres",
    }  # fmt: skip
    try:
        with django_db_blocker.unblock():
            call_command("migrate", "chatstate", database=alias, verbosity=0)
            with pytest.raises(CommandError, match="shared_preload_libraries=pg_stat_statements"):
                call_command("chatstate_bench", server_work=True, cycles=5, database=alias,
                             stdout=StringIO())  # fmt: skip
            connections[alias].close()
            server.settings.append("-c shared_preload_libraries=pg_stat_statements")
            server.crash()  # a restart, with the library
            out = StringIO()
            call_command("chatstate_bench", server_work=True, cycles=5, json=True,
                         database=alias, stdout=out)  # fmt: skip
            connections[alias].close()
    finally:
        del connections[alias]
        del connections.databases[alias]
        server.close()
    (ours, *_) = json.loads(out.getvalue())["rows"]
    assert ours["who"] == "chatstate" and ours["calls"] == 2.0  # two statements a cycle
    assert ours["xids"] >= 2.0  # both write: each takes a transaction id at least
