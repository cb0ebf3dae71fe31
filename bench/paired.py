"""``chatstate_bench --effects --paired``: a cycle staging effects against a plain one, in
alternating blocks in one process (issue 20's comparison).

Separate runs of each (``bench/compare.py``) swing with the machine's load from one run to
the next, often by more than the difference they measure. Here the two alternate every
``--cycles`` cycles for ``--rounds`` pairs, plain first in even pairs and effects first in odd
ones, each on a namespace of its own and the same connection, so a slow spell of the machine
falls on both. Figures: the median of the per-pair ratios (effects time over plain time) and
their quartiles, each side's median rate, the process's CPU per cycle (the client's share)
and, on PostgreSQL with the server on this machine, its backend's CPU per cycle (``/proc``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.cycles import Config, cycle_fn, make_adapter
from bench.prepare import clear_namespace, fill_histories, prefill_history, vacuum
from bench.runner import subscribe_threads

SIDES = ("plain", "effects")


def run_paired(
    config: Config, rounds: int, say: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Alternate ``rounds`` pairs of blocks of ``config["cycles"]`` plain and effects cycles;
    the figures (see the module)."""
    if config["workers"] != 1 or config["concurrency"] or config["mode"] != "cycle":
        raise ValueError("--paired runs the cycle in this process: no --workers or --async")
    if rounds < 2:
        raise ValueError(f"--paired needs --rounds >= 2, got {rounds}")
    sides = {side: {**config, "effects": side == "effects"} for side in SIDES}
    for side, side_config in sides.items():
        side_config["namespace"] = f"{config['namespace']}-{side}"
    try:
        say("preparing the two namespaces")
        runs = {side: _prepared(side_config) for side, side_config in sides.items()}
        vacuum(config)
        server_cpu = _server_cpu(config)
        backend = server_cpu or (lambda: 0.0)
        for side in SIDES:  # warm up
            runs[side](0, config["cycles"])
        say(f"{rounds} pairs of {config['cycles']:,} cycles each: starting")
        walls: dict[str, list[float]] = {side: [] for side in SIDES}
        client = dict.fromkeys(SIDES, 0.0)
        server = dict.fromkeys(SIDES, 0.0)
        for r in range(rounds):
            start = (r + 1) * config["cycles"]
            for side in SIDES if r % 2 == 0 else SIDES[::-1]:
                served, cpu, began = backend(), time.process_time(), time.perf_counter()
                runs[side](start, config["cycles"])
                walls[side].append(time.perf_counter() - began)
                client[side] += time.process_time() - cpu
                server[side] += backend() - served
    finally:
        for side_config in sides.values():
            clear_namespace(side_config)
    return _figures(config, rounds, walls, client, server if server_cpu else None)


def _prepared(config: Config) -> Callable[[int, int], None]:
    """A function running ``count`` cycles from cycle ``start`` on a filled namespace."""
    adapter = make_adapter(config)
    subscribe_threads(adapter, config, 0)
    fill_histories(adapter, config, range(1))
    prefill_history(config)
    run = cycle_fn(config, adapter, 0)

    def block(start: int, count: int) -> None:
        for i in range(start, start + count):
            run(i)

    return block


def _server_cpu(config: Config) -> Callable[[], float] | None:
    """The CPU seconds the server's backend of this process's connection has used so far;
    None when unknown (not PostgreSQL, or the server runs elsewhere)."""
    if config["adapter"] != "database" or config["database_vendor"] != "postgresql":
        return None
    from django.db import connections

    from bench.serverwork_pg import backend_cpu

    with connections[config["using"]].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pids = [cursor.fetchone()[0]]
    if backend_cpu(pids) is None:
        return None
    return lambda: (backend_cpu(pids) or 0.0) / 1e6


def _figures(
    config: Config,
    rounds: int,
    walls: dict[str, list[float]],
    client: dict[str, float],
    server: dict[str, float] | None,
) -> dict[str, Any]:
    ratios = [e / p for p, e in zip(walls["plain"], walls["effects"], strict=True)]
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    per_cycle = 1e6 / (rounds * config["cycles"])
    return {
        "adapter": config["adapter"],
        "database_vendor": config["database_vendor"],
        "history": config["history"],
        "cycles": config["cycles"],
        "rounds": rounds,
        "ratio_median": round(median, 3),
        "ratio_q1": round(q1, 3),
        "ratio_q3": round(q3, 3),
        **{
            f"{side}_cycles_per_s": round(config["cycles"] / statistics.median(walls[side]), 1)
            for side in SIDES
        },
        **{f"{side}_client_cpu_us": round(client[side] * per_cycle, 1) for side in SIDES},
        **{
            f"{side}_server_cpu_us": None if server is None else round(server[side] * per_cycle, 1)
            for side in SIDES
        },
    }


def format_paired(figures: dict[str, Any]) -> str:
    """The figures of :func:`run_paired` as a Markdown table."""
    f = figures
    rows = [
        ("effects / plain, per-pair time (median)", f"{f['ratio_median']:.3f}×"),
        ("quartiles", f"{f['ratio_q1']:.3f}× – {f['ratio_q3']:.3f}×"),
        *(
            (f"{side} cycles/s (median block)", f"{f[f'{side}_cycles_per_s']:,.0f}")
            for side in SIDES
        ),
        *(
            (f"{side} client CPU µs / cycle", f"{f[f'{side}_client_cpu_us']:,.1f}")
            for side in SIDES
        ),
    ]
    if f["plain_server_cpu_us"] is not None:
        rows += [
            (f"{side} server CPU µs / cycle", f"{f[f'{side}_server_cpu_us']:,.1f}")
            for side in SIDES
        ]
    head = (
        f"{f['rounds']} pairs of {f['cycles']:,} cycles, {f['adapter']}"
        f"{' on ' + f['database_vendor'] if f['database_vendor'] else ''}"
        f", history {f['history']:,}\n\n| figure | value |\n| --- | ---: |\n"
    )
    return head + "\n".join(f"| {name} | {value} |" for name, value in rows) + "\n"
