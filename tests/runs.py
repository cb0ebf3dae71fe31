"""Run the suite on every database side by side: ``python -m tests.runs [make variables]``.

Each run is ``make test-<vendor>``: SQLite always, PostgreSQL and MariaDB when reachable.
Under ``CI=true`` an unreachable server fails the whole command. Each run's output is
printed whole once it ends. The exit status is 1 when any run failed.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests import services

RUNS = {"sqlite": None, "postgres": "postgres", "mysql": "mysql"}
SKIPPED = {
    "postgres": "the PostgreSQL suite: PostgreSQL is unreachable (set CHATSTATE_PG_HOST/PORT)",
    "mysql": "the MariaDB/MySQL suite: it is unreachable (set CHATSTATE_MYSQL_HOST/PORT)",
}


def chosen() -> list[str]:
    """The runs this machine can do; exits with 2 if CI needs a missing server."""
    runs = []
    for run, service in RUNS.items():
        if service is None or services.CHECKS[service]():
            runs.append(run)
        elif services.IN_CI:
            sys.exit(f"CI=true and {service} is unreachable: its suite is required in CI.")
        else:
            print(f"SKIPPED {SKIPPED[run]}.", flush=True)
    return runs


def main(make_args: list[str]) -> int:
    """Start every run, print each log as its run ends, and report the failures."""
    began, failed = time.monotonic(), []
    with tempfile.TemporaryDirectory(prefix="chatstate-runs-") as logs:
        running = {}
        for run in chosen():
            log = (Path(logs) / f"{run}.log").open("w+")
            command = ["make", "--no-print-directory", f"test-{run}", *make_args]
            running[run] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log)
        while running:
            for run, (process, log) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[run]
                log.seek(0)
                sys.stdout.write(log.read())
                log.close()
                took = time.monotonic() - began
                print(f"== {run} run: exit {process.returncode} after {took:.0f} s ==", flush=True)
                if process.returncode:
                    failed.append(run)
            time.sleep(0.5)
    if failed:
        print(f"FAILED runs: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
