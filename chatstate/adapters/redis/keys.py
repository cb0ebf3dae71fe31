"""The Redis key layout of a namespace, and dedupe keys as sorted-set members.

Every key of a namespace starts with ``chatstate:{<namespace>}:`` (the braces are a Redis
Cluster hash tag: one namespace lives in one slot; ``\\`` and ``}`` in a namespace are
escaped with ``\\`` so no namespace's prefix is a prefix of another's):

==================  ======  ===========================================================
suffix              type    holds
==================  ======  ===========================================================
``subs``            set     subscribed thread ids
``subt``            zset    thread id → when last subscribed (ms; state retention)
``dd``              zset    dedupe window: member ``adapter NUL message_id`` (NUL and
                            SOH escaped, so members sort as the keys do), score the
                            claim's sequence number (oldest first); trimmed by rank in
                            the script that adds
``ddseq``           string  the namespace's dedupe counter (``INCR`` in the same script)
``ddc``             hash    member → its claim while a message cycle handles it (see
                            ``scripts``); a member without one is done
``ddt``             hash    member → when it was claimed (ms; the window's minimum age)
``ts`` / ``cs``     hash    thread / channel id → state map (JSON text)
``tt`` / ``ct``     zset    thread / channel id → when its state was last written (ms)
``locks``           hash    lock key → lock record (see ``scripts``); the lease is an
                            expiry time on Redis's clock (``TIME``), so an expired lock
                            behaves as free while its pending list stays. A key held by
                            slots (``max_concurrent``) has one record listing its holders
``q:<key>``         list    the lock's pending entries, oldest first (an entry handed to a
                            slot holder's drain marked with that holder)
``qkeys``           set     lock keys whose pending list is not empty
``qseq``            string  the namespace's pending-entry counter (entry ids)
``l:<key>``         list    a capped list's items (JSON texts), oldest first; Redis expires
                            it itself (``PEXPIRE``, renewed by an append with a ttl)
``lkeys``           zset    list key → its expiry (ms; ``inf``: none): the lists that
                            exist, for prune (drops expired ones) and snapshots
``lexp``            hash    list key → the exact expiry text a snapshot gave it, valid
                            while its ``lkeys`` score is still that time (a snapshot
                            exports it then, so a round trip is exact)
``ob``              hash    outbox entry id → its record (see ``lua/outbox.lua``)
``obp``             hash    outbox entry id → its payload (JSON text)
``obk``             hash    idempotency key → the id of the entry waiting with it
``oseq``            string  the namespace's outbox counter (ids grow in commit order)
``obq:<thread>``    list    the ids of the thread's entries not dead, oldest first
``obh``             zset    thread → when its queue's head can next be claimed (ms): a
                            claim reads the due threads, never every entry
``tmp:<token>:…``   —       a snapshot being loaded (expires if the load dies midway)
``snap:<token>:…``  —       a frozen copy being read by a snapshot (expires likewise)
==================  ======  ===========================================================
"""

from __future__ import annotations

import re
from typing import Any

from chatstate.types import DedupeKey


def namespace_prefix(namespace: str) -> str:
    """``chatstate:{<namespace>}:`` with ``\\`` and ``}`` escaped: the namespace's key prefix."""
    escaped = namespace.replace("\\", "\\\\").replace("}", "\\}")
    return f"chatstate:{{{escaped}}}:"


def glob_escape(text: str) -> str:
    """``text`` as a literal in a ``SCAN MATCH`` pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def text(value: Any) -> str:
    """A reply (bytes or str) as ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)


class Keys:
    """The key names of one namespace (or of a snapshot being loaded into it)."""

    __slots__ = (
        "prefix",
        "subs",
        "subt",
        "dd",
        "ddseq",
        "ddc",
        "ddt",
        "ts",
        "tt",
        "cs",
        "ct",
        "locks",
        "qkeys",
        "qseq",
        "lkeys",
        "lexp",
        "ob",
        "obp",
        "obk",
        "oseq",
        "obh",
        "states",
        "touched",
    )

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.subs = prefix + "subs"
        self.subt = prefix + "subt"
        self.dd = prefix + "dd"
        self.ddseq = prefix + "ddseq"
        self.ddc = prefix + "ddc"
        self.ddt = prefix + "ddt"
        self.ts = prefix + "ts"
        self.tt = prefix + "tt"
        self.cs = prefix + "cs"
        self.ct = prefix + "ct"
        self.locks = prefix + "locks"
        self.qkeys = prefix + "qkeys"
        self.qseq = prefix + "qseq"
        self.lkeys = prefix + "lkeys"
        self.lexp = prefix + "lexp"
        self.ob = prefix + "ob"
        self.obp = prefix + "obp"
        self.obk = prefix + "obk"
        self.oseq = prefix + "oseq"
        self.obh = prefix + "obh"
        self.states = {"thread": self.ts, "channel": self.cs}
        self.touched = {"thread": self.tt, "channel": self.ct}

    def q(self, key: str) -> str:
        """The pending list of lock ``key``."""
        return self.prefix + "q:" + key

    def list_key(self, key: str) -> str:
        """The items of the list ``key``."""
        return self.prefix + "l:" + key

    def obq(self, thread_id: str) -> str:
        """The outbox queue of ``thread_id``: its entries not dead, oldest first."""
        return self.prefix + "obq:" + thread_id

    def outbox(self) -> list[str]:
        """The keys every outbox script starts with: ob, obp, obk, oseq, obh."""
        return [self.ob, self.obp, self.obk, self.oseq, self.obh]

    def lock(self, key: str) -> list[str]:
        """The keys a lock script on ``key`` touches: locks, its pending list, qkeys."""
        return [self.locks, self.prefix + "q:" + key, self.qkeys]

    def queue(self, key: str) -> list[str]:
        """:meth:`lock`'s keys and the entry counter: what queueing on ``key`` touches."""
        return [self.locks, self.prefix + "q:" + key, self.qkeys, self.qseq]


def _escape(part: str) -> str:
    if "\x00" in part or "\x01" in part:
        return part.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")
    return part


_UNESCAPE = re.compile("\x01([\x01\x02])")


def _unescape(part: str) -> str:
    if "\x01" not in part:
        return part
    return _UNESCAPE.sub(lambda m: "\x00" if m.group(1) == "\x01" else "\x01", part)


def member(key: DedupeKey) -> str:
    """A dedupe key as a zset member: ``adapter NUL message_id``, NUL and SOH escaped.

    The encoding keeps order: members compared as bytes sort as the keys compare as tuples.
    """
    return _escape(key[0]) + "\x00" + _escape(key[1])


def unmember(value: Any) -> DedupeKey:
    """The dedupe key of a zset member."""
    adapter, message_id = text(value).split("\x00")
    return _unescape(adapter), _unescape(message_id)


def unmembers(members: list[Any]) -> list[DedupeKey]:
    """:func:`unmember` of a page of members (the common case, nothing escaped, fast)."""
    texts = (
        [text(m) for m in members]
        if members and not isinstance(members[0], bytes)
        else [m.decode() for m in members]
    )
    if any("\x01" in t for t in texts):
        return [unmember(t) for t in texts]
    return [(a, m) for a, m in (t.split("\x00") for t in texts)]
