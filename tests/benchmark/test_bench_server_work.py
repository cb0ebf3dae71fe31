"""``chatstate_bench --server-work``: it measures on a server with pg_stat_statements, refuses
clearly elsewhere, and prints one row per figure (the figures are never asserted)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

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
    assert "\n   1.00     10.0  q\n" in table  # 5 calls and 50 µs over 5 cycles


@pytest.mark.run_on("sqlite")
@pytest.mark.usefixtures("db")
def test_elsewhere_than_postgresql_it_refuses() -> None:
    with pytest.raises(CommandError, match="measures PostgreSQL"):
        call_command("chatstate_bench", server_work=True, cycles=5, stdout=StringIO())


@pytest.mark.run_on("postgresql")
@pytest.mark.usefixtures("transactional_db")
def test_on_postgresql_it_measures_or_says_what_the_server_lacks() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SHOW shared_preload_libraries")
        loaded = "pg_stat_statements" in cursor.fetchone()[0]
    out = StringIO()
    if not loaded:
        with pytest.raises(CommandError, match="shared_preload_libraries=pg_stat_statements"):
            call_command("chatstate_bench", server_work=True, cycles=5, stdout=out)
        return
    call_command("chatstate_bench", server_work=True, cycles=5, json=True, stdout=out)
    (ours, *_) = json.loads(out.getvalue())["rows"]
    assert ours["who"] == "chatstate" and ours["calls"] == 2.0  # two statements a cycle
