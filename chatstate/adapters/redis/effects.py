"""The KEYS and ARGV of a commit's or drain step's staged effects (``lua/effects.lua``):
channel operations, the subscription, list appends, outbox entries and the pending entries
gathered (removed), written in the step's own script, all or nothing."""

from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any

from chatstate.adapters.redis import records
from chatstate.adapters.redis.keys import Keys
from chatstate.calls import Staged

_key_text = encode_basestring  # a map key as Python's json writes it (non-ASCII kept)


def effect_keys(keys: Keys, staged: Staged) -> list[str]:
    """The keys the effects of ``staged`` touch, in ``lua/effects.lua``'s order."""
    k = keys
    touched = [k.cs, k.ct, k.subs, k.subt, k.lkeys]
    touched += [k.list_key(append.key) for append in staged.lists]
    if staged.sends:
        touched += k.outbox()
        touched += [k.obq(send.thread_id) for send in staged.sends]
    return touched


def effect_args(staged: Staged) -> list[Any]:
    """The arguments describing the effects of ``staged``, in ``lua/effects.lua``'s order."""
    args: list[Any] = [staged.channel_id or "", len(staged.channel)]
    for op, key, value in staged.channel:
        args += (op, _key_text(key), "" if value is None else value)
    args.append("" if staged.subscribe is None else "1" if staged.subscribe else "0")
    args.append(len(staged.lists))
    for append in staged.lists:
        args += (
            append.key,
            append.value,
            "" if append.max_length is None else append.max_length,
            "" if append.ttl is None else records.ttl_ms(append.ttl),
        )
    args.append(len(staged.sends))
    for send in staged.sends:
        args += (send.key, send.thread_id, send.payload)
    args.append(len(staged.taken))
    args += staged.taken
    return args
