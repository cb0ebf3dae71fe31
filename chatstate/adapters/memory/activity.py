"""How live a memory adapter's namespace is, for ``StateAdapter.activity``.

It takes one pass over the locks, claims and states, under the adapter's mutex."""

from __future__ import annotations

import threading
import time

from chatstate.adapters.memory.store import MemoryStore
from chatstate.types import as_epoch


class MemoryActivity:
    """``_do_activity`` of :class:`~chatstate.adapters.memory.MemoryStateAdapter`."""

    _mutex: threading.RLock
    store: MemoryStore

    def _do_activity(self) -> tuple[int, int, float | None]:
        """Locks whose lease runs, live claims in progress, and the age of the newest activity.

        A claim is live while its lease runs, or while its owner holds its thread's lock.
        Activity is a claim, a lock taken or a state written. Ages use the wall clock.
        Leases use the monotonic clock, as the adapter keeps them."""
        with self._mutex:
            now, wall = time.monotonic(), time.time()
            store = self.store
            locks = store.locks
            held = sum(1 for lock in locks.values() if lock[3] > now)

            def alive(owner: str, thread_id: str, expires: float) -> bool:
                lock = locks.get(thread_id)
                return expires > now or (lock is not None and lock[0] == owner and lock[3] > now)

            claims = sum(
                1
                for _, claim in store.dedupe.values()
                if claim is not None and claim[1] and alive(*claim[:3])
            )
            times = [as_epoch(lock[4], lock[4]) for lock in locks.values()]  # epoch or text
            times += [touched for _, touched in store.states.values()]
            if store.dedupe:
                times.append(store.dedupe[next(reversed(store.dedupe))][0])  # the newest key
            newest = max(times, default=None)
            return held, claims, None if newest is None else max(wall - newest, 0.0)
