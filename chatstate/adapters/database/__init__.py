"""The database adapter: chat state in Django's database, shared by every process.

- :class:`DatabaseStateAdapter` (:mod:`.orm`): the portable ORM path, any database Django
  supports;
- :class:`PostgresStateAdapter` (:mod:`.postgres`): the same contract on PostgreSQL, each hot
  operation one statement (the functions of ``functions.sql``). It registers itself for the
  ``postgresql`` vendor, so ``DatabaseStateAdapter(...)`` — the dotted path of the
  ``ADAPTER`` setting — builds it on PostgreSQL (``fast_sql=False`` keeps the ORM path).
"""

from chatstate.adapters.database.orm import DatabaseStateAdapter
from chatstate.adapters.database.postgres import PostgresStateAdapter

__all__ = ["DatabaseStateAdapter", "PostgresStateAdapter"]
