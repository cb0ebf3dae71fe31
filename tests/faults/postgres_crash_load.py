"""The load of :mod:`tests.faults.test_postgres_crash`, in a process of its own (its Django
is configured for the private server): ``python -m tests.faults.postgres_crash_load PORT N``
migrates chatstate into the server, says ``ready``, delivers messages ``m0``…``m<N-1>`` as a
platform would (:func:`tests.faults.redelivery.deliver`), and prints what they met, as JSON."""

from __future__ import annotations

import json
import sys
from collections import Counter


def main(port: int, messages: int) -> None:
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "chatstate"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "USER": "postgres",
                "NAME": "postgres",
            }
        },
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command

    from chatstate.adapters.database import DatabaseStateAdapter
    from tests.faults.redelivery import deliver, tally

    call_command("migrate", verbosity=0)
    store = DatabaseStateAdapter(namespace="crash")
    print("ready", flush=True)
    met: Counter[str] = Counter()
    ids = [f"m{n}" for n in range(messages)]
    for n, message_id in enumerate(ids):
        met.update(
            deliver(
                store,
                message_id,
                thread_id=f"t{n % 2}",
                ttl=1.0,
                hold=0.02,
                pause=0.05,
                attempts=600,
            )  # fmt: skip
        )
    seen = store.thread_state("t0").get("seen", []) + store.thread_state("t1").get("seen", [])
    print(json.dumps({"met": dict(met), "counts": tally(seen, ids)}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
