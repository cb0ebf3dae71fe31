"""What a message cycle stages for its commit.

That is channel operations, the subscription, list appends and outbox entries. The thread's
history is a list. Nothing here touches the store. Each call checks its arguments; a refused
value raises and stages nothing. Each call records its effect. The cycle's next step writes
everything staged, in one atomic step with the state and the claim. That step is its commit,
or a drain checkpoint."""

from __future__ import annotations

import hashlib
from typing import Any

from chatstate.calls import ChannelOp, CycleRequest, ListAppend, Send, Staged
from chatstate.types import ChatStateError
from chatstate.validation import (
    MAX_ID_LENGTH,
    check_id,
    check_limit,
    check_list_key,
    check_number,
    check_optional_ttl,
    check_scalar,
    dump_value,
    history_key,
)


class Stage:
    """The effects staged since the cycle's last step; the next step writes them."""

    __slots__ = ("request", "history_limit", "history_ttl", "channel", "subscribe", "lists",
                 "sends", "_source", "_sent", "open", "result", "subscribed",
                 "taken", "claim_id", "rows")  # fmt: skip

    def __init__(
        self, request: CycleRequest, history_limit: int, history_ttl: float | None
    ) -> None:
        self.request = request
        self.history_limit = history_limit
        self.history_ttl = history_ttl
        self.channel: list[ChannelOp] = []
        self.subscribe: bool | None = None
        self.lists: list[ListAppend] = []
        self.sends: list[Send] = []
        adapter, message_id = request.dedupe_key
        self._source = f"{adapter}:{message_id}"  # what derived send keys are made of
        self._sent = 0  # sends of the message being handled
        self.open = False  # whether the cycle holds its thread: what it stages can commit
        self.result: object = None
        self.subscribed = False  # the thread's subscription, as read then as staged
        self.taken: list[str] = []  # the ids of the pending entries gather handed out
        self.claim_id: int | None = None  # the claim's row, where the entry gave one
        self.rows: tuple[str | None, ...] = ()  # where its rows lie, where the entry gave them

    def check(self, what: str) -> Stage:
        """This stage, when the cycle can commit what it stages; else the error of ``what``."""
        if not self.open:
            raise ChatStateError(
                f"{what}: this delivery does not hold its thread (result {self.result}), so "
                "nothing it stages could be committed"
            )
        return self

    def staged(self, state: str | None, claim: bool) -> Staged:
        """Everything staged, with the state and the claim, as one step's write."""
        return Staged(
            state,
            claim,
            self.request.channel_id,
            tuple(self.channel),
            self.subscribe,
            tuple(self.lists),
            tuple(self.sends),
            tuple(self.taken),
            self.claim_id,
            self.rows,
        )

    def written(self) -> None:
        """Forget what a step just wrote."""
        self.channel.clear()
        self.lists.clear()
        self.sends.clear()
        self.taken.clear()
        self.subscribe = None

    def handling(self, entry_id: str | None) -> None:
        """A drain handed out the queued entry ``entry_id``: its sends get keys of its own."""
        if entry_id is not None:
            self._source = f"queued:{entry_id}"
            self._sent = 0

    def send_key(self, key: object) -> str:
        """The idempotency key of the next send.

        It is the caller's key, or one derived from the message's dedupe key and the send's
        position. In a drain, a queued entry's id stands for the dedupe key."""
        if key is not None:
            return check_id(key, "msg.send key")
        position = self._sent
        self._sent += 1
        derived = f"{self._source}:{position}"
        if len(derived) > MAX_ID_LENGTH:
            digest = hashlib.sha256(self._source.encode()).hexdigest()
            derived = f"sha256:{digest}:{position}"
        return derived


class ChannelOps:
    """``msg.channel``: operations on the message's channel map, staged for the commit.

    The commit applies them in order; see :mod:`chatstate.channelops`."""

    __slots__ = ("_stage",)

    def __init__(self, stage: Stage) -> None:
        self._stage = stage

    def _op(self, op: str, key: object, value: str | None) -> None:
        stage = self._stage
        if not stage.open:
            stage.check(f"msg.channel.{op}()")
        if type(key) is not str:
            if not isinstance(key, str):
                raise TypeError(f"msg.channel.{op}: key must be a str, not {type(key).__name__}")
            key = str(key)
        if "\x00" in key or not key.isascii():
            dump_value(key, f"msg.channel.{op} key")
        stage.channel.append((op, key, value))

    def set(self, key: str, value: Any) -> None:
        """Stage ``map[key] = value``, for any JSON value."""
        self._op("set", key, dump_value(value, f"msg.channel.set({key!r}) value"))

    def delete(self, key: str) -> None:
        """Stage the removal of ``key``; nothing happens when it is absent."""
        self._op("delete", key, None)

    def incr(self, key: str, by: int | float = 1) -> None:
        """Stage adding ``by`` to the number at ``key``; a missing value or non-number
        counts as 0."""
        self._op("incr", key, dump_value(check_number(by, "msg.channel.incr by"), "by"))

    def add(self, key: str, item: Any) -> None:
        """Stage inserting the JSON scalar ``item`` in the sorted, distinct list at ``key``."""
        self._op("add", key, check_scalar(item, f"msg.channel.add({key!r}) item"))

    def discard(self, key: str, item: Any) -> None:
        """Stage removing the JSON scalar ``item`` from the list at ``key``."""
        self._op("discard", key, check_scalar(item, f"msg.channel.discard({key!r}) item"))


class History:
    """``msg.history``: the thread's conversation, newest items read on entry."""

    __slots__ = ("_stage", "items")

    def __init__(self, stage: Stage, items: list[Any]) -> None:
        self._stage = stage
        #: The newest items read on entry (``handle_message(history=N)``), oldest first,
        #: followed by those this cycle appended.
        self.items = items

    def append(self, value: Any) -> None:
        """Stage ``value``, any JSON value, as the thread's newest history item.

        The history keeps the newest ``HISTORY_LIMIT`` items, for ``HISTORY_TTL`` seconds."""
        stage = self._stage.check("msg.history.append()")
        text = dump_value(value, "msg.history.append value")
        key = history_key(stage.request.thread_id)
        stage.lists.append(ListAppend(key, text, stage.history_limit, stage.history_ttl))
        self.items.append(value)


def list_append(
    key: object, value: object, max_length: object, ttl: object, what: str
) -> ListAppend:
    """A checked append of ``value`` to the list ``key``."""
    return ListAppend(
        check_list_key(key),
        dump_value(value, f"{what} value"),
        None if max_length is None else check_limit(max_length, "max_length"),
        check_optional_ttl(ttl, "ttl"),
    )


class Staging:
    """The staging methods of a message cycle, such as ``msg.channel`` and ``msg.send``.

    Each records an effect the cycle's next step writes. It is a mixin of ``MessageCycle``."""

    __slots__ = ()
    _effects: Stage
    request: CycleRequest

    @property
    def subscribed(self) -> bool:
        """Whether the thread is subscribed: read on entry, then as staged."""
        return self._effects.subscribed

    @property
    def channel(self) -> ChannelOps:
        """Operations on the message's channel map, staged for the commit.

        The channel is ``handle_message(channel_id=...)``. The operations are ``set``,
        ``delete``, ``incr``, ``add`` and ``discard``. ``ValueError`` when the cycle has no
        ``channel_id``."""
        if self.request.channel_id is None:
            raise ValueError("msg.channel needs handle_message(..., channel_id=...)")
        return ChannelOps(self._effects)

    def subscribe(self) -> None:
        """Stage subscribing the thread; ``subscribed`` is True from now on."""
        stage = self._effects.check("msg.subscribe()")
        stage.subscribe = stage.subscribed = True

    def unsubscribe(self) -> None:
        """Stage unsubscribing the thread; ``subscribed`` is False from now on."""
        stage = self._effects.check("msg.unsubscribe()")
        stage.subscribe = stage.subscribed = False

    def append_to_list(
        self,
        key: str,
        value: Any,
        *,
        max_length: int | None = None,
        ttl: float | None = None,
    ) -> None:
        """Stage :meth:`~chatstate.StateAdapter.append_to_list` for the commit."""
        stage = self._effects.check("msg.append_to_list()")
        stage.lists.append(list_append(key, value, max_length, ttl, "msg.append_to_list"))

    def send(self, payload: Any, *, key: str | None = None) -> str:
        """Stage an outbox entry, and return its idempotency key.

        ``payload``, any JSON value, is delivered after the commit. It is delivered at least
        once, in the thread's commit order. The key is ``key``, or one derived from the
        message's dedupe key and this send's position in it."""
        stage = self._effects.check("msg.send()")
        text = dump_value(payload, "msg.send payload")
        entry_key = stage.send_key(key)
        stage.sends.append(Send(entry_key, self.request.thread_id, text))
        return entry_key
