"""The outbox sender of the worker processes the tests start: each delivery becomes one
JSON line (key, thread, payload, pid) appended to the file ``CHATSTATE_TEST_OUTBOX_FILE``.

A line is written with one ``write`` on a file opened for appending, so lines from several
processes never interleave.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE_ENV = "CHATSTATE_TEST_OUTBOX_FILE"


def to_file(entry: Any) -> None:
    """Record one delivery of ``entry``."""
    line = json.dumps(
        {"key": entry.key, "thread": entry.thread_id, "payload": entry.payload, "pid": os.getpid()}
    )
    with open(os.environ[FILE_ENV], "a", encoding="utf-8") as out:
        out.write(line + "\n")


def deliveries(path: Path) -> list[dict[str, Any]]:
    """Every delivery recorded in ``path``, in the order written."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
