"""Scale benchmark of ``chatstate_snapshot`` / ``chatstate_restore`` on PostgreSQL (not a test).

Builds, in a dedicated database (``chatstate_bench``, created and dropped here), a namespace
with 1,000,000 dedupe keys, 100,000 thread states, 10,000 subscriptions and 1,000 locks with
3 pending entries each (loaded with ``COPY``), then runs the two management commands as
subprocesses and reports wall time and peak RSS of each:

    .venv/bin/python bench/snapshot_scale.py [--scale 1.0] [--keep]

Targets (issue 4): export <= 5 s and <= 100 MB; restore <= 20 s and <= 300 MB.
Connection: the ``CHATSTATE_PG_*`` environment variables of ``tests/services.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import PG  # noqa: E402

DB = "chatstate_bench"
NS, COPY_NS = "bench", "bench-restored"
TARGETS = {"export": (5.0, 100.0), "restore": (20.0, 300.0)}


def connect(dbname: str) -> psycopg.Connection:
    return psycopg.connect(
        host=PG["HOST"],
        port=PG["PORT"],
        user=PG["USER"],
        password=PG["PASSWORD"],
        dbname=dbname,
        autocommit=True,
    )


def env() -> dict[str, str]:
    return {
        **os.environ,
        "CHATSTATE_TEST_DB": "postgres",
        "CHATSTATE_PG_NAME": DB,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
    }


def manage(*args: str) -> list[str]:
    return [sys.executable, "-m", "django", *args]


def create_database() -> None:
    with connect(PG["NAME"]) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}"')
        conn.execute(f'CREATE DATABASE "{DB}"')
    subprocess.run(manage("migrate", "--noinput", "-v", "0"), env=env(), check=True, cwd=ROOT)


def drop_database() -> None:
    with connect(PG["NAME"]) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')


def copy_lines(conn: psycopg.Connection, table: str, columns: str, lines: object) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        batch: list[str] = []
        for line in lines:  # type: ignore[attr-defined]
            batch.append(line)
            if len(batch) >= 50_000:
                copy.write("".join(batch))
                batch.clear()
        copy.write("".join(batch))


def populate(scale: float) -> dict[str, int]:
    n = {
        "dedupe": int(1_000_000 * scale),
        "thread_state": int(100_000 * scale),
        "subscriptions": int(10_000 * scale),
        "locks": int(1_000 * scale),
    }
    now = datetime.now(timezone.utc)
    ts, later = now.isoformat(), (now + timedelta(minutes=5)).isoformat()
    with connect(DB) as conn, conn.transaction():
        copy_lines(
            conn,
            "chatstate_subscription",
            "namespace, thread_id, created_at",
            (
                f"{NS}\tslack:C{i % 97}:{1700000000 + i}.{i % 1000:03d}\t{ts}\n"
                for i in range(n["subscriptions"])
            ),
        )
        copy_lines(
            conn,
            "chatstate_dedupeentry",
            "namespace, adapter, message_id, seq, created_at",
            (
                f"{NS}\t{('slack', 'discord', 'telegram')[i % 3]}\t"
                f"m{(i * 7919) % 10**9:09d}-{i}"
                f"\t{i + 1}\t{ts}\n"
                for i in range(n["dedupe"])
            ),
        )
        conn.execute(
            "INSERT INTO chatstate_dedupewindow (namespace, head) VALUES (%s, %s)",
            [NS, n["dedupe"]],
        )
        copy_lines(
            conn,
            "chatstate_threadstate",
            "namespace, thread_id, value, updated_at",
            (
                f"{NS}\tslack:C{i % 97}:{1800000000 + i}.000\t"
                + json.dumps({"turns": i % 50, "topic": "support", "lang": "en", "last": f"m{i}"})
                + f"\t{ts}\n"
                for i in range(n["thread_state"])
            ),
        )
        copy_lines(
            conn,
            "chatstate_lock",
            "namespace, key, owner, strategy, metadata, acquired_at, expires_at",
            (
                f'{NS}\tthread-{i}\tworker-{i % 8}\tqueue\t{{"m": {i}}}\t{ts}\t{later}\n'
                for i in range(n["locks"])
            ),
        )
        copy_lines(
            conn,
            "chatstate_pendinglockentry",
            "namespace, key, owner, strategy, metadata, enqueued_at",
            (
                f'{NS}\tthread-{i}\tworker-{j}\tqueue\t{{"message_id": "q{i}-{j}"}}\t{ts}\n'
                for i in range(n["locks"])
                for j in range(3)
            ),
        )
        conn.execute("ANALYZE")
    return n


def measure(label: str, args: list[str]) -> tuple[float, float]:
    """Run a command; its wall seconds and peak RSS in MB (``/usr/bin/time -v`` if present)."""
    timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    command = [timer, "-v", *args] if timer else args
    start = time.perf_counter()
    done = subprocess.run(command, env=env(), cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{label} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if found:
        rss_mb = int(found.group(1)) / 1024
    else:  # the largest child so far: fine here, each measured command is bigger than the last
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size")
    parser.add_argument("--keep", action="store_true", help="keep the database and the file")
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="chatstate-bench-"))
    snap, again = workdir / "snapshot.json", workdir / "restored.json"
    try:
        create_database()
        start = time.perf_counter()
        sizes = populate(options.scale)
        print(
            f"populated {NS!r} in {time.perf_counter() - start:.1f} s: "
            + ", ".join(f"{k} {v:,}" for k, v in sizes.items())
            + f", pending {3 * sizes['locks']:,}"
        )
        results = {
            "export": measure(
                "export", manage("chatstate_snapshot", "--namespace", NS, "--output", str(snap))
            ),
            "restore": measure(
                "restore", manage("chatstate_restore", str(snap), "--namespace", COPY_NS)
            ),
        }
        measure(
            "check", manage("chatstate_snapshot", "--namespace", COPY_NS, "--output", str(again))
        )
        identical = snap.read_bytes() == again.read_bytes()
        print(
            f"snapshot file: {snap.stat().st_size / 1e6:.1f} MB; restored namespace exports "
            f"{'the same bytes' if identical else 'DIFFERENT bytes'}"
        )
        print(f"{'command':<10} {'wall s':>8} {'target':>8} {'peak RSS MB':>12} {'target':>8}")
        for label, (seconds, rss) in results.items():
            t_s, t_mb = TARGETS[label]
            print(f"{label:<10} {seconds:>8.2f} {t_s:>8.0f} {rss:>12.1f} {t_mb:>8.0f}")
        if not identical:
            sys.exit(1)
    finally:
        if not options.keep:
            drop_database()
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept database {DB!r} and {workdir}")


if __name__ == "__main__":
    main()
