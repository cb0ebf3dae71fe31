"""``manage.py chatstate_bench``: message cycles per second, latency, statements per cycle."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import bench
from chatstate import conf
from chatstate.management.commands._common import ProgressStream
from chatstate.types import ChatStateError


class Command(BaseCommand):
    help = (
        "Run M message cycles (claim, subscription, lock, state read and write, release) "
        "split over N worker processes, and report cycles/s, p50/p99 latency and statements "
        "and commits per cycle. On a terminal, each phase is shown on stderr as it starts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--adapter",
            choices=bench.ADAPTERS,
            default="database",
            help="the backend to measure (default: database)",
        )
        parser.add_argument(
            "--workers", type=int, default=1, metavar="N", help="worker processes (default: 1)"
        )
        parser.add_argument(
            "--cycles",
            type=int,
            default=1000,
            metavar="M",
            help="cycles over all workers (default: 1000)",
        )
        parser.add_argument(
            "--mode",
            choices=(*bench.MODES, "raw"),
            default="cycle",
            help="cycle: handle_message; primitives: the six calls; floor (or raw): the "
            "backend's bare driver sending the cycle's two requests (psycopg on PostgreSQL, "
            "redis-py on Redis) (default: cycle)",
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
            help="with --async: cycles running at once on the loop (default: 8)",
        )
        parser.add_argument(
            "--effects",
            action="store_true",
            help="cycle mode: each cycle also stages a channel counter increment and a "
            "history append, written by its commit; the histories start full, so each "
            "append trims one item (default: off)",
        )
        parser.add_argument(
            "--paired",
            action="store_true",
            help="cycle mode, one process: plain and --effects cycles in alternating blocks of "
            "--cycles cycles, --rounds pairs (default 40); the median ratio of their times",
        )
        parser.add_argument(
            "--history",
            type=int,
            default=0,
            metavar="K",
            help="pre-fill the namespace with K dedupe keys and thread states (the dedupe "
            "window limit is then K, so each claim trims one) (default: 0)",
        )
        parser.add_argument(
            "--namespaces",
            type=int,
            default=1,
            metavar="N",
            help="spread the cycles over N namespaces (cycle i on namespace i %% N): on a "
            "Redis Cluster, each namespace is one slot, so N namespaces spread over the "
            "masters (default: 1)",
        )
        parser.add_argument(
            "--database",
            default=None,
            metavar="ALIAS",
            help="database alias (database adapter; default: CHATSTATE's DATABASE, else the "
            "router's)",
        )
        parser.add_argument(
            "--orm",
            action="store_true",
            help="database adapter: the portable ORM path even on PostgreSQL (fast_sql=False)",
        )
        parser.add_argument(
            "--redis-alias",
            default=None,
            metavar="ALIAS",
            help='CACHES alias (redis adapter; default: CHATSTATE["OPTIONS"]["alias"], '
            "else 'default')",
        )
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
        parser.add_argument(
            "--server-work",
            action="store_true",
            help="the server's own work per cycle instead (counters of a private server, "
            "chatstate and the peer when installed; bench/serverwork_pg.py and "
            "bench/serverwork_redis.py)",
        )
        parser.add_argument(
            "--dsn",
            default=None,
            help="with --server-work on PostgreSQL: the libpq URL of the --database server "
            "(default: built from its settings), for the peer and the observer",
        )
        parser.add_argument(
            "--redis-url",
            default=None,
            metavar="URL",
            help="with --server-work --adapter redis: the private server (its counters are reset)",
        )
        parser.add_argument(
            "--callgrind",
            default=None,
            metavar="OUT",
            help="with --server-work --adapter redis: the server runs under valgrind "
            "--tool=callgrind --instr-atstart=no --callgrind-out-file=OUT; also count "
            "instructions per cycle",
        )
        parser.add_argument(
            "--rounds",
            type=int,
            default=None,
            metavar="N",
            help="with --server-work --adapter redis: interleaved rounds, medians reported "
            "(default 1); with --paired: pairs of blocks (default 40)",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--keep", action="store_true", help="leave the run's namespace in place afterwards"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["server_work"]:
            self._server_work(options)
            return
        if options["outbox"]:
            self._write(self._outbox(options), options)
            return
        say = self._phases() if self.stderr.isatty() else (lambda _: None)
        try:
            config = bench.build_config(
                adapter=options["adapter"],
                workers=options["workers"],
                cycles=options["cycles"],
                mode=options["mode"],
                history=options["history"],
                effects=options["effects"],
                using=options["database"],
                fast_sql=not options["orm"],
                redis_alias=options["redis_alias"],
                concurrency=options["concurrency"] if options["concurrency_async"] else 0,
                namespaces=options["namespaces"],
            )
            if options["paired"]:
                self._paired(config, options, say)
                return
            figures = bench.run_bench(config, keep=options["keep"], say=say)
        except (ValueError, RuntimeError, ChatStateError) as exc:
            raise CommandError(str(exc)) from exc
        self._write(figures, options)

    def _paired(
        self, config: dict[str, Any], options: dict[str, Any], say: Callable[[str], None]
    ) -> None:
        """``--paired``: plain and effects cycles in alternating blocks, in this process."""
        from bench import paired

        figures = paired.run_paired(config, options["rounds"] or 40, say)
        out = json.dumps(figures) if options["json"] else paired.format_paired(figures)
        self.stdout.write(out)

    def _write(self, figures: dict[str, Any], options: dict[str, Any]) -> None:
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
                redis_alias=options["redis_alias"]
                or (conf.get("OPTIONS") or {}).get("alias", "default"),
            )
            return bench.run_outbox_bench(config, keep=options["keep"])
        except (ValueError, RuntimeError, ChatStateError) as exc:
            raise CommandError(str(exc)) from exc

    def _server_work(self, options: dict[str, Any]) -> None:
        """``--server-work``: the PostgreSQL or Redis server's own work per cycle."""
        if options["adapter"] == "database":
            self._pg_server_work(options)
            return
        if options["adapter"] != "redis":
            raise CommandError(f"--server-work is not available for {options['adapter']}")
        from bench import serverwork_redis

        try:
            figures = serverwork_redis.run(options)
        except (ValueError, RuntimeError, ChatStateError) as exc:
            raise CommandError(str(exc)) from exc
        out = json.dumps(figures) if options["json"] else serverwork_redis.format_figures(figures)
        self.stdout.write(out)

    def _pg_server_work(self, options: dict[str, Any]) -> None:
        from django.db import router

        from bench import serverwork_pg
        from chatstate.models import Lock

        using = options["database"] or conf.get("DATABASE") or router.db_for_write(Lock)
        try:
            figures = serverwork_pg.server_work(using, options["cycles"], dsn=options["dsn"])
        except (ValueError, RuntimeError) as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(figures))
        else:
            self.stdout.write(serverwork_pg.format_rows(figures))

    def _phases(self) -> Callable[[str], None]:
        """A ``say`` for ``run_bench``: each phase on its own plain stderr line, with the
        seconds since the command started."""
        stream, started = ProgressStream(self.stderr), time.monotonic()

        def say(line: str) -> None:
            stream.write(f"chatstate_bench [{time.monotonic() - started:5.1f} s] {line}\n")
            stream.flush()

        return say
