"""Cross-process tests: chatstate's guarantees between OS processes on a shared server.

Each test starts OS processes (:mod:`tests.concurrency.harness`: forked from a fresh
interpreter that only set Django up) that run one task
of :mod:`tests.concurrency.tasks` against the PostgreSQL test database (fast path and
ORM path) and Redis (when the Redis adapter is in the run), all starting at one barrier.
They run in the PostgreSQL run only (deselected in the SQLite run) and are marked
``crossprocess``::

    CHATSTATE_TEST_DB=postgres .venv/bin/python -m pytest tests/concurrency -q -s

Each test prints its figures (processes, acquisitions, entries, seconds); the terminal
summary repeats them.
"""
