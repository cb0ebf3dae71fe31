"""The conformance suite: one body of tests that every ``StateAdapter`` backend must pass.

Each test takes the ``store`` fixture (``tests/conftest.py``), so it runs once per backend
of the run: memory and database/SQLite in the SQLite run; database/PostgreSQL (fast path),
database_orm and Redis (when available) in the PostgreSQL run.
"""
