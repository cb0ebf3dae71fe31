"""Run chatstate's cycle, the TypeScript peers and the floors side by side, interleaved, and
print the medians with the ratios the performance goals are stated in.

    CHATSTATE_TEST_DB=postgres CHATSTATE_PG_NAME=chatstate_bench \\
        .venv/bin/python bench/compare.py --repeat 3 [--only pg,redis] [--json FILE]

Per backend, at 1 client and at 8 (8 worker processes, and 8 coroutines on one event loop):
chatstate (``chatstate_bench``), the peer (``bench/peer/cycle.mjs``: ``@chat-adapter/state-pg``
or ``-redis``; its 8 run as one Node event loop, the way a Node server shares a pool), and the
floor — for PostgreSQL ``pgbench -M prepared`` running the cycle's two statements with the
same number of clients, and for Redis a bare redis-py loop of the cycle's two ``EVALSHA``.
Each round runs every configuration once, in the same order, so a noisy neighbour slows all
of them alike; the table shows the median of the rounds. ``--only "pg chatstate 1,pg effects
1,redis chatstate 1,redis effects 1"`` compares a cycle that stages a channel increment and a
history append (``--effects``) with a plain one. The peer needs ``npm install`` in
bench/peer first; the database needs chatstate's migrations.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BENCH = [PYTHON, "-m", "django", "chatstate_bench", "--json", "--skip-checks"]
ENV = os.environ

#: pgbench's script: the fast path's two statements, as chatstate sends them (a fresh message
#: on one of the client's own 100 threads; the state written back).
PGBENCH_SCRIPT = """\\set t random(0, 99)
\\set m random(1, 1000000000000)
SELECT claim_id, claim_at, lock_at, state_at FROM chatstate_enter('bench-pgbench', 'bench', 'pgb-' || :m, 1000, 'pgb-' || :client_id || '-' || :t, 'pgb-w' || :client_id, 'reject', '{}'::jsonb, 300, 0, NULL, 'drop_oldest') \\gset
SELECT * FROM chatstate_commit('bench-pgbench', 'pgb-' || :client_id || '-' || :t, 'pgb-w' || :client_id, '{"n": 1}'::jsonb, :claim_id, true, true, NULL, NULL, false, nullif(:claim_at, '')::tid, nullif(:lock_at, '')::tid, nullif(:state_at, '')::tid);
"""  # noqa: E501


def pg_url() -> str:
    """The peer's connection URL: the same server and database as the Django settings."""
    user, host = ENV.get("CHATSTATE_PG_USER", "postgres"), ENV.get("CHATSTATE_PG_HOST", "127.0.0.1")
    port, name = ENV.get("CHATSTATE_PG_PORT", "5432"), ENV.get("CHATSTATE_PG_NAME", "postgres")
    password = ENV.get("CHATSTATE_PG_PASSWORD", "")
    auth = f"{user}:{password}" if password else user
    return f"postgres://{auth}@{host}:{port}/{name}"


def redis_url() -> str:
    return ENV.get("CHATSTATE_REDIS_URL", "redis://127.0.0.1:6379/15")


def pgbench(clients: int, seconds: int, script: Path) -> list[str]:
    return [
        "pgbench", "-n", "-M", "prepared", "-f", str(script), "-c", str(clients),
        "-j", str(clients), "-T", str(seconds), "-h", ENV.get("CHATSTATE_PG_HOST", "127.0.0.1"),
        "-p", ENV.get("CHATSTATE_PG_PORT", "5432"), "-U", ENV.get("CHATSTATE_PG_USER", "postgres"),
        ENV.get("CHATSTATE_PG_NAME", "postgres"),
    ]  # fmt: skip


def configurations(cycles: int, seconds: int, script: Path) -> dict[str, list[str]]:
    """Label -> command printing one JSON object (pgbench: its report)."""
    pg_peer = ["node", str(ROOT / "bench/peer/cycle.mjs"), "--url", pg_url()]
    redis_peer = ["node", str(ROOT / "bench/peer/cycle.mjs"), "--url", redis_url()]
    redis = [*BENCH, "--adapter", "redis", "--redis-alias", "chatstate"]
    big = str(cycles * 4)
    return {
        "pg chatstate 1": [*BENCH, "--workers", "1", "--cycles", str(cycles)],
        "pg effects 1": [*BENCH, "--workers", "1", "--cycles", str(cycles), "--effects"],
        "pg chatstate 8 processes": [*BENCH, "--workers", "8", "--cycles", big],
        "pg chatstate 8 one loop": [*BENCH, "--async", "--concurrency", "8", "--cycles", big],
        "pg peer 1": [*pg_peer, "--workers", "1", "--cycles", str(cycles)],
        "pg peer 8 one loop": [*pg_peer, "--workers", "8", "--cycles", big, "--inproc"],
        "pg pgbench 1": pgbench(1, seconds, script),
        "pg pgbench 8": pgbench(8, seconds, script),
        "redis chatstate 1": [*redis, "--workers", "1", "--cycles", str(cycles * 4)],
        "redis effects 1": [*redis, "--workers", "1", "--cycles", str(cycles * 4), "--effects"],
        "redis chatstate 8 processes": [*redis, "--workers", "8", "--cycles", str(cycles * 16)],
        "redis chatstate 8 one loop": [
            *redis,
            "--async",
            "--concurrency",
            "8",
            "--cycles",
            str(cycles * 16),
        ],
        "redis peer 1": [*redis_peer, "--workers", "1", "--cycles", str(cycles * 4)],
        "redis peer 8 one loop": [
            *redis_peer,
            "--workers",
            "8",
            "--cycles",
            str(cycles * 16),
            "--inproc",
        ],
        "redis floor 1": [*redis, "--mode", "floor", "--workers", "1", "--cycles", str(cycles * 4)],
        "redis floor 8 one loop": [
            *redis,
            "--mode",
            "floor",
            "--async",
            "--concurrency",
            "8",
            "--cycles",
            str(cycles * 16),
        ],
    }


def rate(label: str, stdout: str) -> float:
    """Cycles per second from a run's output."""
    if " pgbench " in f" {label} ":
        found = re.search(r"tps = ([0-9.]+)", stdout)
        if found is None:
            raise RuntimeError(f"{label}: no tps in pgbench's output:\n{stdout}")
        return float(found.group(1))
    figures = json.loads(stdout.strip().splitlines()[-1])
    if label.startswith(("pg chatstate", "pg effects")) and figures["adapter"] != "database":
        # (a settings module whose default database is not PostgreSQL runs the ORM path)
        raise RuntimeError(f"{label}: ran {figures['adapter']}, not the fast path: migrate")
    return float(figures["cycles_per_s"])


RATIOS = [
    ("pg 1: chatstate / peer", "pg chatstate 1", "pg peer 1"),
    ("pg 8: chatstate (best) / peer", "pg chatstate 8", "pg peer 8 one loop"),
    ("pg 1: chatstate / pgbench", "pg chatstate 1", "pg pgbench 1"),
    ("pg 8: chatstate (best) / pgbench", "pg chatstate 8", "pg pgbench 8"),
    ("redis 1: chatstate / peer", "redis chatstate 1", "redis peer 1"),
    ("redis 8: chatstate (best) / peer", "redis chatstate 8", "redis peer 8 one loop"),
    ("redis 1: chatstate / floor", "redis chatstate 1", "redis floor 1"),
    # issue 20: a cycle that stages a channel increment and a history append, against a plain
    # one (the goal: at most 1.15×)
    ("pg 1: plain / effects", "pg chatstate 1", "pg effects 1"),
    ("redis 1: plain / effects", "redis chatstate 1", "redis effects 1"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=2000, help="cycles of a 1-client run")
    parser.add_argument("--seconds", type=int, default=10, help="length of a pgbench run")
    parser.add_argument("--only", default="", help="comma-separated label prefixes")
    parser.add_argument("--json", default="", help="also write every run to this file")
    args = parser.parse_args()
    script = Path(tempfile.mkdtemp()) / "cycle.sql"
    script.write_text(PGBENCH_SCRIPT)
    configs = configurations(args.cycles, args.seconds, script)
    if args.only:
        prefixes = tuple(p.strip() for p in args.only.split(","))
        configs = {k: v for k, v in configs.items() if k.startswith(prefixes)}
    env = {**ENV, "DJANGO_SETTINGS_MODULE": ENV.get("DJANGO_SETTINGS_MODULE", "tests.settings")}
    runs: dict[str, list[float]] = {label: [] for label in configs}
    for round_ in range(args.repeat):
        for label, command in configs.items():
            out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            if out.returncode:
                print(f"{label}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                return 1
            runs[label].append(rate(label, out.stdout))
            print(f"round {round_ + 1} {label}: {runs[label][-1]:,.0f}/s", file=sys.stderr)
    medians = {label: statistics.median(rates) for label, rates in runs.items()}
    print(f"| run | cycles/s (median of {args.repeat}) | rounds |")
    print("| --- | ---: | --- |")
    for label, rates in runs.items():
        listed = " · ".join(f"{r:,.0f}" for r in rates)
        print(f"| {label} | {medians[label]:,.0f} | {listed} |")
    print("\n| ratio | median | per round |")
    print("| --- | ---: | --- |")
    for name, ours, theirs in RATIOS:
        mine = [k for k in runs if k.startswith(ours)]
        if not mine or theirs not in runs:
            continue
        best = max(mine, key=lambda k: medians[k])  # the better way to run 8
        per_round = [max(runs[k][i] for k in mine) / runs[theirs][i] for i in range(args.repeat)]
        print(
            f"| {name} | {statistics.median(per_round):.2f}× ({best}) | "
            f"{' · '.join(f'{r:.2f}×' for r in per_round)} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
