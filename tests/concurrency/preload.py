"""What the cross-process children's forkserver imports once, before it forks any child.

Django set up on the test settings (``DJANGO_SETTINGS_MODULE``, ``CHATSTATE_TEST_DB`` and
the services' variables: the xdist worker's, inherited), the store factories with the
adapters' modules, and the tasks. Nothing here keeps a connection open: the settings only
check that the servers answer. Each child then only points the database at the parent's
test database and builds its adapter (:func:`tests.concurrency.harness.build_adapter`).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("CHATSTATE_TEST_DB", "postgres")  # as build_adapter: the parent's run

import django  # noqa: E402

django.setup()

import tests.concurrency.tasks  # noqa: E402, F401
import tests.conftest  # noqa: E402, F401
