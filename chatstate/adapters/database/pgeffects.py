"""What a message writes besides its thread, on the PostgreSQL fast path: lists, the outbox,
and the effects a cycle's commit writes (a mixin of ``PostgresStateAdapter``).

Each hook is one statement, most of them a call of a function of ``functions.sql``, written
as an :func:`~chatstate.adapters.operations.operation` so that its async twin runs natively.
A commit hands its staged effects to ``chatstate_commit`` / ``chatstate_drain`` as one
``jsonb`` parameter (:func:`effects_json`): no round trip of their own.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeVar

from chatstate.adapters.operations import COUNT, ROW, Op, operation
from chatstate.calls import ListAppend, OutboxClaim, Staged
from chatstate.types import OutboxEntry

T = TypeVar("T")

APPEND = "SELECT chatstate_append(%s::text, %s::text, %s::jsonb, %s::bigint, %s::float8)"
GET_LIST = "SELECT chatstate_list_items(%s::text, %s::text, %s::bigint)"
DELETE_LIST = "SELECT chatstate_delete_list(%s::text, %s::text)"

_ISO = """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""
_OUTBOX = (
    "SELECT coalesce(jsonb_agg(jsonb_build_array(id, key, thread_id, payload, attempts, dead,"
    f" to_char(created_at AT TIME ZONE 'UTC', {_ISO}),"
    f" to_char(due_at AT TIME ZONE 'UTC', {_ISO})) ORDER BY id), '[]')"
    " FROM chatstate_outboxmessage WHERE namespace = %s::text"
)
OUTBOX = {False: _OUTBOX, True: _OUTBOX + " AND thread_id = %s::text"}
OUTBOX_CLAIM = "SELECT chatstate_outbox_claim(%s::text, %s::text, %s::bigint, %s::float8)"
OUTBOX_DELIVERED = (
    "DELETE FROM chatstate_outboxmessage WHERE namespace = %s::text AND id = %s::bigint"
)
OUTBOX_FAILED = (
    "UPDATE chatstate_outboxmessage SET attempts = attempts + 1,"
    " dead = attempts + 1 >= %s::bigint,"
    " due_at = statement_timestamp() + make_interval(secs => %s::float8),"
    " lease_owner = NULL, lease_until = NULL"
    " WHERE namespace = %s::text AND id = %s::bigint AND lease_owner = %s::text"
    " RETURNING dead"
)
OUTBOX_RELEASE = (
    "UPDATE chatstate_outboxmessage SET lease_owner = NULL, lease_until = NULL"
    " WHERE namespace = %s::text AND id = ANY (%s::bigint[]) AND lease_owner = %s::text"
)
OUTBOX_REQUEUE = (
    "UPDATE chatstate_outboxmessage"
    " SET dead = false, attempts = 0, due_at = statement_timestamp()"
    " WHERE namespace = %s::text AND id = ANY (%s::bigint[]) AND dead"
)
OUTBOX_DISCARD = (
    "DELETE FROM chatstate_outboxmessage WHERE namespace = %s::text AND id = ANY (%s::bigint[])"
)

_MAX_ID = 2**63 - 1


def jsonb_value(value: Any) -> Any:
    """A ``jsonb`` column's value as Python: Django's psycopg setup hands it back as text, a
    bare connection parses it."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def effects_json(staged: Staged) -> str | None:
    """The ``p_effects`` parameter of ``chatstate_commit`` / ``chatstate_drain``: what
    ``staged`` holds besides the state and the claim (the ids of the entries gather handed
    out too), as JSON text (see ``chatstate_effects`` in ``functions.sql``); None when nothing
    is staged. Values already JSON text are embedded
    as they are (a channel operation's value as a JSON string: ``incr`` tells an integer from
    a float by its text)."""
    if not staged.effects:
        return None
    text = _string
    ops = ",".join(
        f'["{op}",{text(key)},{"null" if value is None else text(value)}]'
        for op, key, value in staged.channel
    )
    lists = ",".join(
        f"[{text(a.key)},{a.value},{_number(a.max_length)},{_number(a.ttl)}]" for a in staged.lists
    )
    sends = ",".join(f"[{text(s.key)},{text(s.thread_id)},{s.payload}]" for s in staged.sends)
    taken = ",".join(str(entry_id) for entry_id in outbox_ids(list(staged.taken)))
    channel = "null" if staged.channel_id is None else text(staged.channel_id)
    subscribe = "null" if staged.subscribe is None else "true" if staged.subscribe else "false"
    return (
        f'{{"channel":{channel},"ops":[{ops}],"subscribe":{subscribe},"lists":[{lists}],'
        f'"sends":[{sends}],"taken":[{taken}]}}'
    )


#: A ``str`` as JSON text (the C encoder's, non-ASCII kept as it is).
_string = json.encoder.encode_basestring


def _number(value: float | None) -> str:
    """A checked finite number, or None, as JSON text."""
    return "null" if value is None else repr(value)


def outbox_ids(ids: list[str]) -> list[int]:
    """The row ids among ``ids`` (an outbox or pending entry's id is the decimal text of its
    row's ``bigint``; any other text names no entry)."""
    found = []
    for text in ids:
        if text.isascii() and text.isdigit() and text == str(int(text)) and int(text) <= _MAX_ID:
            found.append(int(text))
    return found


def outbox_entries(rows: Any) -> list[OutboxEntry]:
    """Entries from their JSON arrays ``[id, key, thread, payload, attempts, dead, created_at,
    due_at]``."""
    return [
        OutboxEntry(str(entry_id), key, thread_id, payload, attempts, dead, created, due)
        for entry_id, key, thread_id, payload, attempts, dead, created, due in (
            jsonb_value(rows) or ()
        )
    ]


class PostgresListsAndOutbox:
    """The list and outbox hooks of the fast path, each one statement."""

    namespace: str

    if TYPE_CHECKING:

        def _drive(self, op: Op[T]) -> T: ...

    # -- lists ---------------------------------------------------------------------------

    @operation
    def _do_append_to_list(self, append: ListAppend) -> Op[None]:
        params = (self.namespace, append.key, append.value, append.max_length, append.ttl)
        yield (ROW, APPEND, params)

    @operation
    def _do_get_list(self, key: str, limit: int | None) -> Op[list[Any]]:
        row = yield (ROW, GET_LIST, (self.namespace, key, limit))
        items: list[Any] = jsonb_value(row[0])
        return items

    @operation
    def _do_delete_list(self, key: str) -> Op[int]:
        return int((yield (ROW, DELETE_LIST, (self.namespace, key)))[0])

    # -- the outbox ----------------------------------------------------------------------

    @operation
    def _do_outbox(self, thread_id: str | None) -> Op[list[OutboxEntry]]:
        params = (self.namespace,) if thread_id is None else (self.namespace, thread_id)
        return outbox_entries((yield (ROW, OUTBOX[thread_id is not None], params))[0])

    @operation
    def _do_outbox_claim(self, claim: OutboxClaim) -> Op[list[OutboxEntry]]:
        params = (self.namespace, claim.owner, claim.limit, claim.lease)
        return outbox_entries((yield (ROW, OUTBOX_CLAIM, params))[0])

    @operation
    def _do_outbox_delivered(self, owner: str, entry_id: str) -> Op[None]:
        for found in outbox_ids([entry_id]):  # none when the id names no entry
            yield (COUNT, OUTBOX_DELIVERED, (self.namespace, found))

    @operation
    def _do_outbox_failed(
        self, owner: str, entry_id: str, delay: float, max_attempts: int
    ) -> Op[bool]:
        found = outbox_ids([entry_id])
        if not found:
            return False
        row = yield (ROW, OUTBOX_FAILED, (max_attempts, delay, self.namespace, found[0], owner))
        return row is not None and bool(row[0])

    @operation
    def _do_outbox_release(self, owner: str, entry_ids: list[str]) -> Op[None]:
        found = outbox_ids(entry_ids)
        if found:
            yield (COUNT, OUTBOX_RELEASE, (self.namespace, found, owner))

    @operation
    def _do_outbox_requeue(self, entry_ids: list[str]) -> Op[int]:
        found = outbox_ids(entry_ids)
        if not found:
            return 0
        return int((yield (COUNT, OUTBOX_REQUEUE, (self.namespace, found))))

    @operation
    def _do_outbox_discard(self, entry_ids: list[str]) -> Op[int]:
        found = outbox_ids(entry_ids)
        if not found:
            return 0
        return int((yield (COUNT, OUTBOX_DISCARD, (self.namespace, found))))
