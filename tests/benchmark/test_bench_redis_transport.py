"""``bench/redis_transport.py``: the Redis cycle's floor per client transport, run small."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.needs_kind("redis")
def test_both_transports_and_chatstates_cycle_run_and_report_it() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "redis_transport.py"), "--cycles", "5"]
        + ["--rounds", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert [re.sub(r"\s+[\d,.]+ cycles/s.*", "", line) for line in lines] == [
        "round 1 redis-py fcall",
        "round 1 bare socket",
        "round 1 chatstate cycle",
    ], done.stdout
    assert all("client CPU" in line for line in lines)
