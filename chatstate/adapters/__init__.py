"""The backends, chosen by the dotted path in ``CHATSTATE["ADAPTER"]``.

- :mod:`.base` — :class:`~.base.StateAdapter`, the public sync API (its async twins in
  :mod:`.asyncapi`), built on the hooks of :class:`~.hooks.StateBackend` (:mod:`.hooks`:
  the contract a backend implements, each hook documented there once);
- :mod:`.memory` — one process, for tests and development;
- :mod:`.database` — the Django ORM on any database, and on PostgreSQL its fast path
  (:class:`~.database.postgres.PostgresStateAdapter`, chosen by vendor);
- :mod:`.redis` — Redis through a django-redis cache alias, one Lua script per operation.
"""
