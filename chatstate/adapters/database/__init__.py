"""The database adapter: chat state in Django's database, shared by every process.

- :class:`DatabaseStateAdapter` (:mod:`.orm`) is the portable ORM path. It runs on any
  database Django supports.
- :class:`PostgresStateAdapter` (:mod:`.postgres`) keeps the same contract on PostgreSQL.
  Each hot operation is one statement, a function of ``functions.sql``.

``DatabaseStateAdapter(...)`` builds the PostgreSQL variant on PostgreSQL.
``fast_sql=False`` keeps the ORM path there.
"""

from chatstate.adapters.database.orm import DatabaseStateAdapter
from chatstate.adapters.database.postgres import PostgresStateAdapter

__all__ = ["DatabaseStateAdapter", "PostgresStateAdapter"]
