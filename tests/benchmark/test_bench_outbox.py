"""``chatstate_bench --outbox``: entries committed over threads, drained by dispatchers, the
throughput printed (speed is never asserted; every entry sent and none left is)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import STORE_FACTORIES

KINDS = {"database": {}, "redis": {"redis_alias": "chatstate"}}


@pytest.mark.run_on("postgresql")
@pytest.mark.parametrize("adapter", [kind for kind in KINDS if kind in STORE_FACTORIES])
def test_an_outbox_run_drains_every_entry_and_reports_entries_per_second(
    adapter: str, transactional_db: None
) -> None:
    out = StringIO()
    call_command(
        "chatstate_bench",
        outbox=True,
        adapter=adapter,
        cycles=300,
        workers=3,
        dispatchers=3,
        batch=20,
        json=True,
        stdout=out,
        **KINDS[adapter],
    )
    figures = json.loads(out.getvalue())
    assert figures["mode"] == "outbox" and figures["adapter"] == adapter
    assert (figures["entries"], figures["sent"], figures["left"]) == (300, 300, 0)
    assert (figures["committers"], figures["dispatchers"], figures["batch"]) == (3, 3, 20)
    assert figures["entries_per_s"] > 0 and figures["commits_per_s"] > 0
    table = StringIO()
    call_command(
        "chatstate_bench", outbox=True, adapter=adapter, cycles=20, stdout=table, **KINDS[adapter]
    )
    assert "entries_per_s" in table.getvalue()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"adapter": "memory"}, "--outbox measures a shared backend"),
        ({"dispatchers": 0}, "dispatchers must be an int >= 1"),
        ({"batch": 0}, "batch must be an int >= 1"),
    ],
)
def test_bad_outbox_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("chatstate_bench", outbox=True, **{"adapter": "database", **options})
