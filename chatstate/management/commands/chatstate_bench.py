"""``manage.py chatstate_bench``: message cycles per second, latency, statements per cycle."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatstate import bench


class Command(BaseCommand):
    help = (
        "Run M message cycles (claim, subscription, lock, state read and write, release) "
        "split over N worker processes, and report cycles/s, p50/p99 latency and statements "
        "and commits per cycle."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--adapter", choices=bench.ADAPTERS, default="database")
        parser.add_argument("--workers", type=int, default=1, help="worker processes")
        parser.add_argument("--cycles", type=int, default=1000, help="cycles over all workers")
        parser.add_argument(
            "--mode",
            choices=(*bench.MODES, "raw"),
            default="cycle",
            help="cycle: handle_message; primitives: the six calls; floor (or raw): the "
            "backend's bare driver sending the cycle's two requests (psycopg on PostgreSQL, "
            "redis-py on Redis)",
        )
        parser.add_argument(
            "--async",
            dest="concurrency_async",
            action="store_true",
            help="run the cycles as coroutines on one event loop in one process "
            "(ahandle_message; --concurrency of them at once)",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=8,
            metavar="N",
            help="with --async: cycles running at once on the loop (default 8)",
        )
        parser.add_argument(
            "--history",
            type=int,
            default=0,
            help="pre-fill the namespace with this many dedupe keys and thread states "
            "(the dedupe window limit is then this number, so each claim trims one)",
        )
        parser.add_argument(
            "--namespaces",
            type=int,
            default=1,
            metavar="N",
            help="spread the cycles over N namespaces (cycle i on namespace i %% N): on a "
            "Redis Cluster, each namespace is one slot, so N namespaces spread over the masters",
        )
        parser.add_argument("--database", default=None, help="database alias (database adapter)")
        parser.add_argument(
            "--orm",
            action="store_true",
            help="database adapter: the portable ORM path even on PostgreSQL (fast_sql=False)",
        )
        parser.add_argument("--redis-alias", default="default", help="CACHES alias (redis)")
        parser.add_argument(
            "--outbox",
            action="store_true",
            help="the outbox's throughput instead: --cycles message cycles over --workers "
            "threads each commit one entry, then --dispatchers threads drain them in batches "
            "of --batch; prints entries/s (database or redis)",
        )
        parser.add_argument(
            "--dispatchers", type=int, default=4, metavar="N", help="with --outbox (default 4)"
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=100,
            metavar="N",
            help="with --outbox: entries one dispatch claims (default 100)",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--keep", action="store_true", help="leave the run's namespace in place afterwards"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        figures = self._outbox(options) if options["outbox"] else self._cycles(options)
        if options["json"]:
            self.stdout.write(json.dumps(figures))
        else:
            self.stdout.write(bench.format_table(figures))

    def _outbox(self, options: dict[str, Any]) -> dict[str, Any]:
        try:
            config = bench.outbox_config(
                options["adapter"],
                entries=options["cycles"],
                committers=options["workers"],
                dispatchers=options["dispatchers"],
                batch=options["batch"],
                using=options["database"],
                fast_sql=not options["orm"],
                redis_alias=options["redis_alias"],
            )
            return bench.run_outbox_bench(config, keep=options["keep"])
        except (ValueError, RuntimeError) as exc:
            raise CommandError(str(exc)) from exc

    def _cycles(self, options: dict[str, Any]) -> dict[str, Any]:
        try:
            config = bench.build_config(
                adapter=options["adapter"],
                workers=options["workers"],
                cycles=options["cycles"],
                mode=options["mode"],
                history=options["history"],
                using=options["database"],
                fast_sql=not options["orm"],
                redis_alias=options["redis_alias"],
                concurrency=options["concurrency"] if options["concurrency_async"] else 0,
                namespaces=options["namespaces"],
            )
            return bench.run_bench(config, keep=options["keep"])
        except (ValueError, RuntimeError) as exc:
            raise CommandError(str(exc)) from exc
