"""The Redis cycle's floor per transport: redis-py's ``fcall`` against a bare socket.

Both send the cycle's two ``FCALL`` (``bench.floors``: the entry and the commit, the
requests ``chatstate_bench --mode floor`` sends) over one connection, one client, a fresh
message per cycle on 100 threads; a third runs chatstate's own cycle (``handle_message``,
its validation, its transport) the same way. The bare socket packs and parses with hiredis and does
nothing else: no pool, no health check, no retry. What it reaches is what any Python client
of this cycle can reach on the machine. Rounds alternate; each prints cycles/s and the
client's CPU per cycle.

    CHATSTATE_REDIS_URL=redis://127.0.0.1:6379/15 DJANGO_SETTINGS_MODULE=tests.settings \\
        PYTHONPATH=. .venv/bin/python bench/redis_transport.py [--cycles 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlparse

import django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--alias", default="chatstate", help="the CACHES alias of Redis")
    args = parser.parse_args()
    django.setup()
    import hiredis
    import redis
    from django.conf import settings

    from bench.floors import _load_functions, _redis_requests, committed, held_state
    from chatstate.adapters.redis import RedisStateAdapter

    caches = cast(dict[str, dict[str, Any]], settings.CACHES)
    url = str(caches[args.alias]["LOCATION"])
    client = redis.Redis.from_url(url)
    _load_functions(client)
    adapter = RedisStateAdapter(namespace=f"transport{time.time_ns() % 10**9}", alias=args.alias)
    enter, commit = _redis_requests(adapter)
    where = urlparse(url)
    sock = socket.create_connection((where.hostname or "127.0.0.1", where.port or 6379))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = hiredis.Reader()

    def bare(*command: Any) -> Any:
        sock.sendall(hiredis.pack_command(command))
        while (reply := reader.gets()) is False:
            reader.feed(sock.recv(65536))
        return reply

    bare("SELECT", (where.path or "/0").lstrip("/") or "0")
    calls: dict[str, Callable[..., Any]] = {
        "redis-py fcall": client.fcall,
        "bare socket": lambda *request: bare("FCALL", *request),
    }
    names = [*calls, "chatstate cycle"]
    for n in range(args.rounds):
        for name in names:
            prefix = f"{n}-{name[:4]}-{time.time_ns()}-"
            started, cpu = time.perf_counter(), time.process_time()
            if name == "chatstate cycle":  # handle_message: the adapter's own transport
                for i in range(args.cycles):
                    with adapter.handle_message(
                        ("bench", f"{prefix}{i}"), thread_id=f"t{i % 100}", owner="w"
                    ) as msg:
                        msg.state["n"] = msg.state.get("n", 0) + 1
            else:
                call = calls[name]
                for i in range(args.cycles):
                    thread, member = f"t{i % 100}", f"bench\x00{prefix}{i}"
                    state = held_state(call(*enter(member, thread, "w")))
                    state["n"] = state.get("n", 0) + 1
                    committed(call(*commit(member, thread, "w", json.dumps(state))))
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            print(
                f"round {n + 1} {name:15s} {args.cycles / seconds:7,.0f} cycles/s,"
                f" client CPU {cpu / args.cycles * 1e6:5.1f} µs a cycle"
            )
    adapter.clear()  # the run's namespace


if __name__ == "__main__":
    main()
