"""Run chatstate_bench and the TypeScript peer side by side, interleaved, and print medians.

    CHATSTATE_TEST_DB=postgres CHATSTATE_PG_NAME=chatstate_bench_db \\
        .venv/bin/python bench/compare.py --repeat 3 [--only database,peer] [--json FILE]

Each round runs every configuration once, in the same order, so a noisy neighbour slows
all of them alike; the table shows the median of the rounds (cycles/s, p50, p99). The peer
needs ``npm install`` in bench/peer first; the memory and Redis rows need nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BENCH = [PYTHON, "-m", "django", "chatstate_bench", "--json", "--skip-checks"]


def pg_url() -> str:
    """The peer's connection URL: the same server and database as the Django settings."""
    env = os.environ
    user, host = env.get("CHATSTATE_PG_USER", "postgres"), env.get("CHATSTATE_PG_HOST", "127.0.0.1")
    port, name = env.get("CHATSTATE_PG_PORT", "5432"), env.get("CHATSTATE_PG_NAME", "postgres")
    password = env.get("CHATSTATE_PG_PASSWORD", "")
    auth = f"{user}:{password}" if password else user
    return f"postgres://{auth}@{host}:{port}/{name}"


def configurations(cycles: int) -> dict[str, list[str]]:
    """Label -> command printing one JSON object."""
    peer = ["node", str(ROOT / "bench/peer/cycle.mjs"), "--url", pg_url()]
    return {
        "database w1": [*BENCH, "--workers", "1", "--cycles", str(cycles)],
        "database w8": [*BENCH, "--workers", "8", "--cycles", str(cycles * 4)],
        "peer w1": [*peer, "--workers", "1", "--cycles", str(cycles)],
        "peer w8": [*peer, "--workers", "8", "--cycles", str(cycles * 4), "--inproc"],
        "raw w1": [*BENCH, "--mode", "raw", "--workers", "1", "--cycles", str(cycles)],
        "raw w8": [*BENCH, "--mode", "raw", "--workers", "8", "--cycles", str(cycles * 4)],
        "database_orm w1": [*BENCH, "--orm", "--workers", "1", "--cycles", str(cycles // 4)],
        "database_orm w8": [*BENCH, "--orm", "--workers", "8", "--cycles", str(cycles)],
        "history 1e3": [*BENCH, "--history", "1000", "--cycles", str(cycles)],
        "history 1e6": [*BENCH, "--history", "1000000", "--cycles", str(cycles)],
        "memory primitives w1": [*BENCH, "--adapter", "memory", "--mode", "primitives",
                                 "--cycles", "200000"],
        "memory cycle w1": [*BENCH, "--adapter", "memory", "--cycles", "200000"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=2000, help="cycles of a 1-worker run")
    parser.add_argument("--only", default="", help="comma-separated label prefixes")
    parser.add_argument("--json", default="", help="also write every run to this file")
    args = parser.parse_args()
    configs = configurations(args.cycles)
    if args.only:
        prefixes = tuple(p.strip() for p in args.only.split(","))
        configs = {k: v for k, v in configs.items() if k.startswith(prefixes)}
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get(
        "DJANGO_SETTINGS_MODULE", "tests.settings")}
    runs: dict[str, list[dict[str, object]]] = {label: [] for label in configs}
    for round_ in range(args.repeat):
        for label, command in configs.items():
            out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            if out.returncode:
                print(f"{label}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                return 1
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            runs[label].append(figures)
            print(f"round {round_ + 1} {label}: {figures['cycles_per_s']}/s", file=sys.stderr)
    print(f"| run | cycles/s (median of {args.repeat}) | runs | p50 ms | p99 ms |")
    print("| --- | ---: | --- | ---: | ---: |")
    for label, figures in runs.items():
        rates = [float(f["cycles_per_s"]) for f in figures]  # type: ignore[arg-type]
        p50 = statistics.median(float(f["p50_ms"]) for f in figures)  # type: ignore[arg-type]
        p99 = statistics.median(float(f["p99_ms"]) for f in figures)  # type: ignore[arg-type]
        listed = ", ".join(f"{r:,.0f}" for r in rates)
        print(f"| {label} | {statistics.median(rates):,.0f} | {listed} | {p50:.2f} | {p99:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
