"""A replace restore into a live namespace, refused and forced (not a test): wall times.

Issue 19 (item 4): ``chatstate_restore`` replaces a namespace only when it is quiet. This
builds a namespace holding ``--keys`` dedupe keys (100,000 by default) and 1,000 thread
states on each backend — the database (``CHATSTATE_TEST_DB``: sqlite, postgres or mysql,
in a test database created and dropped here, ``CHATSTATE_PG_TEST_NAME`` /
``CHATSTATE_MYSQL_TEST_NAME``) and Redis (``CHATSTATE_REDIS_URL``) — then
times, in this process (``call_command``; Django's start excluded):

- ``activity()``: the liveness check alone;
- a replace into the empty namespace (quiet: restored);
- a replace right after (live: the restore's own writes are activity: refused);
- a replace while a lock is held (live: refused);
- ``--force`` (replaced);
- ``--merge`` while live (merged).

    CHATSTATE_TEST_DB=postgres .venv/bin/python bench/restore_live.py [--keys 100000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CHATSTATE_TEST_DB", "sqlite")
os.environ.setdefault("CHATSTATE_PG_TEST_NAME", "test_chatstate_bench_live")
os.environ.setdefault("CHATSTATE_MYSQL_TEST_NAME", "test_chatstate_bench_live")
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"


def snapshot_text(keys: int) -> str:
    order = [["slack", f"m{i:09d}"] for i in range(keys)]
    return json.dumps(
        {
            "format": "chatstate.snapshot",
            "version": 3,
            "dedupe": order,
            "dedupe_order": order,
            "thread_state": {f"t{i:06d}": {"turns": i} for i in range(1000)},
        }
    )


def timed(label: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    try:
        result, outcome = fn(), "ok"
    except Exception as exc:  # the refusals are what is measured
        result, outcome = None, f"{type(exc).__name__}: {str(exc)[:110]}"
    print(f"| {label} | {time.perf_counter() - start:.2f} s | {outcome} |", flush=True)
    return result


def run(adapter_path: str, options: dict[str, Any], path: Path, keys: int) -> None:
    from django.core.management import call_command
    from django.test import override_settings

    from chatstate.registry import build_adapter

    settings = {"ADAPTER": adapter_path, "OPTIONS": options, "NAMESPACE": "live-bench"}
    with override_settings(CHATSTATE=settings):
        store = build_adapter()
        clear = getattr(store, "clear", None)
        if clear is not None:
            clear()
        else:
            store.load_snapshot({})

        def restore(*args: str) -> Callable[[], Any]:
            quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
            return lambda: call_command("chatstate_restore", str(path), *args, **quiet)

        print(f"\n{type(store).__name__} ({store.name}), {keys:,} dedupe keys\n")
        print("| step | wall | outcome |\n| --- | ---: | --- |")
        timed("activity() of the empty namespace", lambda: store.activity())
        timed("replace into the empty namespace", restore())
        timed("activity() right after", lambda: store.activity())
        timed("replace right after (recent activity)", restore())
        store.lock("t000001", "worker-1", ttl=60)
        timed("activity() with a lock held", lambda: store.activity())
        timed("replace while a lock is held", restore())
        timed("--merge while live", restore("--merge"))
        timed("replace --force", restore("--force"))
        if clear is not None:
            clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    options = parser.parse_args()
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    from tests import settings as test_settings

    old = setup_databases(verbosity=0, interactive=False)
    try:
        with tempfile.TemporaryDirectory() as work:
            path = Path(work) / "snap.json"
            path.write_text(snapshot_text(options.keys))
            print(f"database: {connection.vendor}; file: {path.stat().st_size / 2**20:.1f} MiB")
            run("chatstate.adapters.database.DatabaseStateAdapter", {}, path, options.keys)
            if test_settings.REDIS_AVAILABLE:
                redis = {"alias": "chatstate"}
                run("chatstate.adapters.redis.RedisStateAdapter", redis, path, options.keys)
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
