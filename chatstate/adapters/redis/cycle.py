"""The message cycle on Redis (a mixin of ``RedisStateAdapter``): each step is one script.

Entry (``cycle_enter.lua``: claim, lock or slot, subscription, state and, when asked, the
newest history items), commit and drain steps (``cycle_commit.lua`` / ``cycle_drain.lua``:
the state, the claim, the release and every staged effect -- ``lua/effects.lua`` -- all or
nothing), a look of ``gather`` (``cycle_gather.lua``), renewal and abort: two round trips
for a cycle, whatever it stages, with a lock or a slot (``lua/slots.lua``). A step with no
effects staged runs the script without the effects library, so it costs what it did before
effects existed; one with effects runs the script with the libraries of the kinds staged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from chatstate.adapters.operations import Op, operation
from chatstate.adapters.redis import records, scripts
from chatstate.adapters.redis.connection import EVAL
from chatstate.adapters.redis.effects import effect_args, effect_keys
from chatstate.adapters.redis.keys import Keys, member, text
from chatstate.calls import CycleEntry, CycleRequest, Handover, Staged, lease_lost
from chatstate.types import RESULTS, LockResult
from chatstate.validation import history_key

T = TypeVar("T")


class RedisCycle:
    """The cycle hooks of a Redis adapter (see ``StateBackend`` for what each guarantees)."""

    keys: Keys
    pending_ttl: float | None

    if TYPE_CHECKING:

        def _drive(self, op: Op[T]) -> T: ...

    def _pending_ttl(self) -> int | str:
        return "" if self.pending_ttl is None else records.ttl_ms(self.pending_ttl)

    @operation
    def _do_cycle_enter(self, request: CycleRequest) -> Op[CycleEntry]:
        k, thread_id = self.keys, request.thread_id
        keys = [k.dd, k.ddseq, k.ddc, k.ddt, k.subs, k.ts, *k.queue(thread_id)]
        args: list[Any] = [
            member(request.dedupe_key),
            request.dedupe_limit,
            thread_id,
            request.owner,
            request.strategy.value,
            request.metadata,
            records.ttl_ms(request.ttl),
            records.ttl_ms(request.min_age) if request.min_age else 0,
            "" if request.max_pending is None else request.max_pending,
            request.overflow,
        ]
        if request.history:
            keys.append(k.list_key(history_key(thread_id)))
            args.append(request.history)
        if request.slots:  # the cap follows the history count (0: none)
            args += [request.max_concurrent] if request.history else [0, request.max_concurrent]
        reply = yield (EVAL, scripts.CYCLE_ENTER, keys, args)
        if isinstance(reply, (bytes, str)):  # acquired and held, nothing dropped, taken over
            return _held(reply)  # or read: '1', subscribed ('1' or '0'), the state's JSON
        if not int(reply[0]):
            return CycleEntry(False, bool(int(reply[1])), in_progress=bool(int(reply[2])))
        result = RESULTS[text(reply[2])]
        entry = CycleEntry(True, bool(int(reply[1])), result)
        if reply[3] is not None:
            entry.state = records.loads(reply[3])
        entry.dropped = records.pending_entries(reply[4])
        entry.taken_over = reply[5] and text(reply[5]) or None
        entry.held = bool(int(reply[6]))
        if reply[7]:
            entry.history = [records.loads(item) for item in reply[7]]
        return entry

    def _step(
        self,
        request: CycleRequest,
        staged: Staged,
        plain: scripts.LuaScript,
        with_effects: dict[scripts.Kinds, scripts.LuaScript],
        keys: list[str],
        args: list[Any],
    ) -> Op[Handover]:
        """Send a commit or drain step (with its staged effects, if any, on the script with
        the libraries of the kinds staged); its handover."""
        script = plain
        if staged.effects:
            script = with_effects[bool(staged.channel), bool(staged.lists), bool(staged.sends)]
            keys += effect_keys(self.keys, staged)
            args += effect_args(staged)
        reply = yield (EVAL, script, keys, args)
        if reply == 1:  # released, nothing handed over
            return Handover()
        code = int(reply[0])
        if code == 1:
            return records.handover(reply)
        if code == 2:
            raise TypeError(f"channel state cannot be stored: {text(reply[1])}")
        raise lease_lost(request, text(reply[1]))

    @operation
    def _do_cycle_commit(self, request: CycleRequest, staged: Staged) -> Op[Handover]:
        k, thread_id = self.keys, request.thread_id
        return (
            yield from self._step(
                request,
                staged,
                scripts.CYCLE_COMMIT,
                scripts.CYCLE_COMMIT_STAGED,
                [*k.lock(thread_id), k.ts, k.dd, k.ddc, k.tt],
                [
                    thread_id,
                    request.owner,
                    staged.state or "",
                    member(request.dedupe_key),
                    _holds(request),
                    self._pending_ttl(),
                    "1" if staged.claim else "0",
                ],
            )
        )

    @operation
    def _do_cycle_drain(
        self, request: CycleRequest, staged: Staged, finished: str | None
    ) -> Op[Handover]:
        k, thread_id = self.keys, request.thread_id
        return (
            yield from self._step(
                request,
                staged,
                scripts.CYCLE_DRAIN,
                scripts.CYCLE_DRAIN_STAGED,
                [*k.lock(thread_id), k.ts, k.ddc, k.tt, k.qseq],
                [
                    thread_id,
                    request.owner,
                    staged.state or "",
                    member(request.dedupe_key),
                    finished or "",
                    records.ttl_ms(request.ttl),
                    self._pending_ttl(),
                    "1" if staged.claim else "0",
                    _holds(request),
                ],
            )
        )

    @operation
    def _do_cycle_renew(self, request: CycleRequest) -> Op[bool]:
        args = [
            request.thread_id,
            request.owner,
            member(request.dedupe_key),
            _holds(request),
            records.ttl_ms(request.ttl),
        ]
        keys = [self.keys.locks, self.keys.ddc]
        return bool(int((yield (EVAL, scripts.CYCLE_RENEW, keys, args))))

    @operation
    def _do_cycle_gather(self, request: CycleRequest) -> Op[Handover]:
        thread_id = request.thread_id
        args = [thread_id, request.owner, records.ttl_ms(request.ttl), self._pending_ttl()]
        reply = yield (EVAL, scripts.CYCLE_GATHER, self.keys.lock(thread_id), args)
        if not int(reply[0]):
            raise lease_lost(request, text(reply[1]))
        return records.handover(reply)

    @operation
    def _do_cycle_abort(self, request: CycleRequest) -> Op[bool]:
        k = self.keys
        keys = [k.dd, k.ddc, k.ddt, k.locks]
        if request.slots:  # its slot's entries are unmarked
            keys.append(k.q(request.thread_id))
        args = [member(request.dedupe_key), request.thread_id, request.owner, _holds(request)]
        return bool(int((yield (EVAL, scripts.CYCLE_ABORT, keys, args))))


def _held(reply: bytes | str) -> CycleEntry:
    """The entry of ``cycle_enter``'s one-string reply: acquired and held, nothing else."""
    entry = CycleEntry(True, reply[1:2] in (b"1", "1"), LockResult.ACQUIRED, held=True)
    if len(reply) > 2:
        entry.state = records.loads(reply[2:])
    return entry


def _holds(request: CycleRequest) -> str:
    """What the cycle holds of its thread, for the scripts: '1' its lock, 's' a slot, '0'
    nothing (``concurrent``: its claim is its lease)."""
    return "1" if request.locks else "s" if request.slots else "0"
