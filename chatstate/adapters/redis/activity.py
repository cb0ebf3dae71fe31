"""How live a Redis namespace is, for ``StateAdapter.activity``.

It is one read-only script, ``lua/activity.lua``, on the namespace's keys. They share one
slot, so on a Redis Cluster it runs on one node. Times are Redis's own clock."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from chatstate.adapters.operations import Op, operation
from chatstate.adapters.redis.connection import EVAL
from chatstate.adapters.redis.keys import Keys
from chatstate.adapters.redis.scripts import LuaScript

#: Not in ``scripts.ALL``: this module keeps the one script it runs.
ACTIVITY = LuaScript.load("activity")
T = TypeVar("T")


class RedisActivity:
    """``_do_activity`` of :class:`~chatstate.adapters.redis.RedisStateAdapter`."""

    keys: Keys

    if TYPE_CHECKING:  # the adapter's; a stub here would shadow it

        def _drive(self, op: Op[T]) -> T: ...

    @operation
    def _do_activity(self) -> Op[tuple[int, int, float | None]]:
        """Locks held, live claims in progress, and the age of the newest write.

        The newest write is a claim, a lock taken or a state written. One script reads all
        three and changes nothing."""
        k = self.keys
        names = [k.locks, k.ddc, k.dd, k.ddt, k.tt, k.ct]
        held, claims, newest, now = yield (EVAL, ACTIVITY, names, [])
        age = None if int(newest) < 0 else max(int(now) - int(newest), 0) / 1000
        return int(held), int(claims), age
