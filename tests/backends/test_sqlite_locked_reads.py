"""SQLite: a read while another connection writes the table waits, it does not fail.

Django's in-memory test database shares one cache between connections. There, a read of a
table another connection is writing fails at once with "database table is locked": the busy
timeout does not apply. A keepalive thread renewing a claim hit it in CI."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from chatstate.adapters.database import DatabaseStateAdapter

pytestmark = [pytest.mark.run_on("sqlite"), pytest.mark.usefixtures("transactional_db")]


def test_a_read_waits_for_a_write_of_another_connection() -> None:
    store = DatabaseStateAdapter(namespace="locked-read")
    store.claim_dedupe(("s", "m1"))
    writing, done = threading.Event(), threading.Event()

    def write_for_a_while() -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("UPDATE chatstate_dedupeentry SET seq = seq WHERE 1")
                writing.set()
                done.wait(0.3)
        finally:
            writing.set()
            connection.close()

    writer = threading.Thread(target=write_for_a_while)
    writer.start()
    try:
        assert writing.wait(10)
        assert store.is_duplicate(("s", "m1"))
    finally:
        done.set()
        writer.join()
