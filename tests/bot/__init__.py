"""The example bot's webhook, through its real views, on every backend of the run."""

import pytest

#: Refused before the view calls the store: the run's own database and memory suffice (every
#: kind handles the accepted messages in the other tests).
STORE_INDEPENDENT = pytest.mark.store_kinds("memory", "database")
