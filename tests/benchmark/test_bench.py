"""``chatstate_bench``: the command's output and option checks (speed is never asserted)."""

from __future__ import annotations

import asyncio
import json
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings

import bench
from chatstate import LockResult
from tests import services


def test_a_memory_run_prints_one_json_object_with_the_design_fields() -> None:
    out = StringIO()
    call_command(
        "chatstate_bench",
        adapter="memory",
        workers=2,
        cycles=300,
        mode="primitives",
        json=True,
        stdout=out,
    )
    figures = json.loads(out.getvalue())
    for field in (
        "adapter",
        "database_vendor",
        "workers",
        "cycles",
        "seconds",
        "cycles_per_s",
        "p50_ms",
        "p99_ms",
        "statements_per_cycle",
        "commits_per_cycle",
        "mode",
    ):
        assert field in figures
    assert figures["adapter"] == "memory"
    assert (figures["workers"], figures["cycles"], figures["mode"]) == (2, 300, "primitives")
    assert figures["ops_per_s"] == pytest.approx(6 * figures["cycles_per_s"], rel=0.01)
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]


def test_the_table_names_every_figure() -> None:
    table = bench.format_table({"adapter": "memory", "p50_ms": 0.01, "statements_per_cycle": None})
    lines = table.splitlines()
    assert lines[2].split() == ["adapter", "memory"]
    assert lines[4].split() == ["statements_per_cycle", "-"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 0}, "workers must be an int >= 1"),
        ({"cycles": 2, "workers": 3}, "cycles (2) must be at least workers (3)"),
        ({"history": -1}, "history must be an int >= 0"),
    ],
)
def test_bad_options_are_refused_with_a_clear_error(options: dict[str, int], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("chatstate_bench", adapter="memory", **options)


@pytest.mark.django_db
def test_the_floor_needs_postgresql_or_redis() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        with pytest.raises(ValueError, match="--mode floor needs --adapter redis, or database"):
            bench.build_config(adapter="database", mode="raw")
    else:
        config = bench.build_config(adapter="database", mode="raw")
        assert config["psycopg"]["dbname"] == connection.settings_dict["NAME"]


def test_an_async_run_shares_one_event_loop_among_its_coroutines() -> None:
    out = StringIO()
    call_command(
        "chatstate_bench",
        adapter="memory",
        cycles=400,
        concurrency_async=True,
        concurrency=4,
        json=True,
        stdout=out,
    )
    figures = json.loads(out.getvalue())
    assert (figures["workers"], figures["concurrency"], figures["cycles"]) == (1, 4, 400)
    assert figures["cycles_per_s"] > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 2, "concurrency": 2}, "--async runs one process"),
        ({"mode": "primitives", "concurrency": 2}, "--async runs the cycle"),
    ],
)
def test_async_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bench.build_config(adapter="memory", **options)


def test_cycles_spread_over_namespaces() -> None:
    out = StringIO()
    call_command(
        "chatstate_bench", adapter="memory", cycles=120, namespaces=12, json=True, stdout=out
    )
    figures = json.loads(out.getvalue())
    assert (figures["namespaces"], figures["cycles"]) == (12, 120)
    assert figures["cycles_per_s"] > 0


@pytest.mark.django_db
@pytest.mark.run_on("postgresql")
@pytest.mark.needs_kind("redis_cluster")
def test_a_run_on_the_cluster_spreads_its_namespaces_over_the_masters(
    redis_cluster: Any,
) -> None:
    from bench.cycles import namespaces

    out = StringIO()
    call_command(
        "chatstate_bench",
        adapter="redis",
        redis_alias="chatstate_cluster",
        cycles=240,
        workers=2,
        namespaces=12,
        json=True,
        stdout=out,
    )
    figures = json.loads(out.getvalue())
    assert (figures["namespaces"], figures["cycles"]) == (12, 240)
    masters = {
        redis_cluster.master_of(f"chatstate:{{{ns}}}:subs")
        for ns in namespaces({"namespace": "bench-1", "namespaces": 12})
    }
    assert len(masters) == 3, "12 namespaces should land on all three masters"
    with pytest.raises(CommandError, match="not a cluster"):
        call_command(
            "chatstate_bench", adapter="redis", redis_alias="chatstate_cluster", mode="floor"
        )


# -- what an operator meets (issue 22) -----------------------------------------------------


class TTY(StringIO):
    def isatty(self) -> bool:
        return True


def test_each_phase_shows_on_a_terminal_and_nothing_elsewhere() -> None:
    """Issue 22: 11-15 s without a word before the figures."""
    tty, out = TTY(), StringIO()
    call_command("chatstate_bench", adapter="memory", cycles=50, json=True, stdout=out, stderr=tty)
    phases = [line.split("] ", 1)[1] for line in tty.getvalue().splitlines()]
    assert [phase.split(" ")[0] for phase in phases] == [
        "preparing",
        "counting",
        "50",
        "50",
        "removing",
    ]
    assert phases[2] == "50 cycles on 1 worker process(es): starting"
    assert "\x1b[" not in tty.getvalue()  # plain text, not the error style
    assert json.loads(out.getvalue())["cycles"] == 50
    quiet = StringIO()
    call_command(
        "chatstate_bench", adapter="memory", cycles=50, json=True, stdout=out, stderr=quiet
    )
    assert quiet.getvalue() == ""


def test_help_gives_every_default() -> None:
    """Issue 22: ``--help`` gave no defaults."""
    from bench.management.commands.chatstate_bench import Command

    parser = Command().create_parser("manage.py", "chatstate_bench")
    ours = [
        action
        for action in parser._actions
        if action.dest
        in {"adapter", "workers", "cycles", "mode", "concurrency", "history"}
        | {"namespaces", "database", "redis_alias"}
    ]
    assert len(ours) == 9
    missing = [a.dest for a in ours if "default: " not in (a.help or "")]
    assert missing == []
    shown = {a.dest: a.help for a in ours}
    assert "(default: 1000)" in shown["cycles"] and "(default: database)" in shown["adapter"]


def test_a_cache_that_is_not_redis_is_a_command_error() -> None:
    """Issue 22: a traceback instead of a CommandError. The tests' ``default`` cache is
    Django's local-memory cache."""
    with pytest.raises(CommandError, match="cache alias 'default' is not a Redis cache"):
        call_command("chatstate_bench", adapter="redis", cycles=10)


def test_an_unreachable_redis_is_a_command_error() -> None:
    caches = {
        **settings.CACHES,
        "nowhere": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{services.free_port()}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1},
        },
    }
    with override_settings(CACHES=caches), pytest.raises(CommandError, match="nowhere"):
        call_command("chatstate_bench", adapter="redis", redis_alias="nowhere", cycles=10)


@pytest.mark.run_on("postgresql")
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_the_redis_floor_commits_every_cycle(use_async: bool) -> None:
    """The floor once took the cycle's short reply for a refusal and never committed."""
    from bench import floors
    from chatstate.adapters.redis import RedisStateAdapter

    adapter = RedisStateAdapter(namespace=f"floor-{use_async}", alias="chatstate")
    config = {"adapter": "redis", "redis_url": settings.CACHES["chatstate"]["LOCATION"]}
    threads = ["t0", "t1", "t2"]
    try:
        floors.floor_fn(config, adapter, threads, "o", "m")  # loads the scripts
        if use_async:
            run = floors.async_floor_fn(config, adapter, threads, "o", "m")

            async def cycles() -> None:
                for i in range(30):
                    await run(i)

            asyncio.run(cycles())
        else:
            run_sync = floors.floor_fn(config, adapter, threads, "o", "m")
            for i in range(30):
                run_sync(i)
        assert [adapter.thread_state(t) for t in threads] == [{"n": 10}] * 3
        assert [adapter.lock(t, "next") for t in threads] == [LockResult.ACQUIRED] * 3
    finally:
        adapter.clear()


@pytest.mark.run_on("postgresql")
def test_redis_runs_on_the_alias_in_the_chatstate_setting() -> None:
    """Issue 22: ``--adapter redis`` ignored ``CHATSTATE["OPTIONS"]["alias"]``."""
    configured = {
        "ADAPTER": "chatstate.adapters.redis.RedisStateAdapter",
        "OPTIONS": {"alias": "chatstate"},
    }
    out = StringIO()
    with override_settings(CHATSTATE=configured):
        assert bench.build_config(adapter="redis")["redis_alias"] == "chatstate"
        call_command("chatstate_bench", adapter="redis", cycles=40, json=True, stdout=out)
    figures = json.loads(out.getvalue())
    assert (figures["adapter"], figures["cycles"], figures["round_trips_per_cycle"]) == (
        "redis",
        40,
        2,
    )


def test_effects_stage_a_channel_counter_and_a_history_item() -> None:
    out = StringIO()
    call_command(
        "chatstate_bench", adapter="memory", cycles=40, effects=True, json=True, stdout=out
    )
    figures = json.loads(out.getvalue())
    assert figures["effects"] is True and figures["cycles"] == 40
    with pytest.raises(CommandError, match="--effects"):
        call_command("chatstate_bench", adapter="memory", cycles=40, effects=True, mode="floor")


def test_paired_alternates_plain_and_effects_blocks_in_one_process() -> None:
    out = StringIO()
    call_command(
        "chatstate_bench", adapter="memory", paired=True, cycles=20, rounds=4, json=True,
        stdout=out,
    )  # fmt: skip
    figures = json.loads(out.getvalue())
    assert (figures["cycles"], figures["rounds"]) == (20, 4)
    assert figures["ratio_q1"] <= figures["ratio_median"] <= figures["ratio_q3"]
    assert figures["plain_cycles_per_s"] > 0 and figures["effects_cycles_per_s"] > 0
    # Staging and applying the effects costs the client CPU (memory: all of the work).
    assert figures["effects_client_cpu_us"] > 0 and figures["plain_client_cpu_us"] > 0
    assert figures["plain_server_cpu_us"] is None  # no server to read
    with pytest.raises(CommandError, match="--workers"):
        call_command("chatstate_bench", adapter="memory", paired=True, workers=2, cycles=20)
    with pytest.raises(CommandError, match="--rounds >= 2"):
        call_command("chatstate_bench", adapter="memory", paired=True, cycles=20, rounds=1)


def _filled(adapter: Any, config: dict[str, Any]) -> list[list[Any]]:
    """The histories of two workers' first threads after ``fill_histories`` (limit 3)."""
    from bench.cycles import thread_ids
    from bench.prepare import fill_histories

    adapter.history_limit = 3
    fill_histories(adapter, {**config, "effects": False}, range(2))  # plain runs: nothing
    assert adapter.history(thread_ids(0)[0]) == []
    fill_histories(adapter, config, range(2))
    return [
        [item["n"] for item in adapter.history(thread)]
        for worker in (0, 1)
        for thread in thread_ids(worker)[:2]
    ]


def test_effects_runs_start_from_full_histories() -> None:
    """Each append of an effects run trims one item, as in a deployment's steady state."""
    from chatstate.adapters.memory import MemoryStateAdapter

    config = {"adapter": "memory", "database_vendor": None, "effects": True}
    assert _filled(MemoryStateAdapter(namespace="bench-fill"), config) == [[-3, -2, -1]] * 4


@pytest.mark.run_on("postgresql")
def test_effects_runs_fill_postgresql_histories_in_one_statement(db: None) -> None:
    from chatstate.adapters.database import DatabaseStateAdapter

    config = {"adapter": "database", "database_vendor": "postgresql", "effects": True,
              "using": "default"}  # fmt: skip
    store = DatabaseStateAdapter(namespace="bench-fill")
    store.append_to_list = None  # type: ignore[method-assign]  # not the adapter's appends
    assert _filled(store, config) == [[-3, -2, -1]] * 4


@pytest.mark.django_db(transaction=True)
@pytest.mark.run_on("postgresql")
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_the_postgresql_floor_runs_the_functions_as_they_are(use_async: bool) -> None:
    """The async floor still sent version 14's commit (five parameters) after version 15
    added where the rows lie, and read the state's address as the claim's id."""
    out = StringIO()
    options = {"concurrency_async": True, "concurrency": 2} if use_async else {}
    call_command("chatstate_bench", adapter="database", mode="floor", cycles=40, json=True,
                 stdout=out, **options)  # fmt: skip
    figures = json.loads(out.getvalue())
    assert (figures["cycles"], figures["database_vendor"]) == (40, "postgresql")
