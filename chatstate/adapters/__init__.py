"""The backends, chosen by the dotted path in ``CHATSTATE["ADAPTER"]``.

- :mod:`.base`: :class:`~.base.StateAdapter`, the public sync API. Its async twins are in
  :mod:`.asyncapi`. It is built on the hooks of :class:`~.hooks.StateBackend`. The contract
  a backend implements is :mod:`.hooks`, where each hook is documented once.
- :mod:`.memory`: one process, for tests and development.
- :mod:`.database`: the Django ORM on any database, with a fast path on PostgreSQL.
- :mod:`.redis`: Redis through a django-redis cache alias, one Lua script per operation."""
