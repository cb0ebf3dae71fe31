"""The Lua scripts of ``RedisStateAdapter``: each operation is one atomic server-side step.

Redis runs a script without interleaving any other command, so a script that reads and then
writes is what a PL/pgSQL function is to the PostgreSQL fast path. Each script lives in
``lua/<name>.lua`` (its ``KEYS`` and ``ARGV`` documented at its top) and is the shared
functions of ``lua/prelude.lua`` followed by its body. On Redis 7 the adapter loads each
script as a function library and calls it with ``FCALL``; elsewhere it calls it by SHA
(``EVALSHA``). On a server that lacks it, it loads it and calls again (:mod:`.invoke`).

Time is Redis's clock (``TIME``), in milliseconds, so hosts whose clocks drift agree on
who holds a lease.

Stored records (all JSON text, written by Lua — ``cjson``, or joined as cjson writes them —
or by Python's ``json``):

* a lock, a field of the ``locks`` hash:
  ``[owner, strategy, metadata_json, acquired_ms, expires_ms, acquired_at|false,
  expires_at|false]`` — the two last are the exact ISO text a snapshot gave (kept so a
  round trip is exact) until the lease changes;
* a lock's record also carries its lease, ``ttl_ms``, as an eighth element (what
  ``release_lock(only_if_idle=True)`` renews it by);
* a key held by slots (capped ``concurrent``), a field of the ``locks`` hash: a lock record
  summarizing its holders — ``[first owner, 'concurrent', first metadata_json, first
  acquired_ms, latest expires_ms, false, false, first ttl_ms, holders]``, ``holders`` =
  ``[[owner, expires_ms, acquired_ms, ttl_ms, metadata_json, acquired_at|false,
  expires_at|false], ...]`` in the order they took their slots (``lua/slots.lua``): every
  exclusive path sees a lock held until the latest slot's lease ends;
* a pending entry, an item of a ``q:<key>`` list:
  ``[owner, strategy, metadata_json, enqueued_ms, enqueued_at|false, id]`` — ``id`` unique in
  its namespace (the ``qseq`` counter), what a drain removes once the entry is finished; an
  entry a slot holder's drain was handed carries ``owner, until_ms`` as elements 7 and 8;
* a dedupe claim in progress, a field of the ``ddc`` hash (the member's, in ``dd``):
  ``[owner, thread_id, expires_ms, expires_at|false]``. A member of ``dd`` without one is
  done; ``ddt`` holds each member's claim time (for the window's minimum age);
* touch times (state retention): sorted sets ``tt`` / ``ct`` (thread / channel states) and
  ``subt`` (subscriptions), scored by the last write in milliseconds;
* a list item, an item of an ``l:<key>`` list: the value's JSON text as given;
* an outbox entry, a field of the ``ob`` hash: ``[key, thread_id, created_ms, due_ms,
  attempts, dead (0|1), lease owner ('' none), lease_until_ms]``, its payload the same
  field of ``obp`` (``lua/outbox.lua``); an entry loaded from a snapshot also carries the
  exact ``created_at`` and ``due_at`` texts it gave (the latter valid while ``due_ms`` is
  still its time), and its attempts as a decimal string when Lua's numbers (14 significant
  digits when encoded) would not keep them exactly.

Each script carries only the prelude's functions it names, directly or through another
(:func:`prelude_for`). Libraries (``lua/channel.lua``, ``lists.lua``, ``outbox.lua``,
``effects.lua``, ``load_lists.lua``) come between the prelude and the body of the scripts
that use them only: under ``EVALSHA``, Lua builds a script's functions each time it runs,
so the hot scripts carry none they do not call (a function library builds them once).
``lua/slots.lua`` goes inside the branches that meet slots (a ``-- @slots`` line): a path
that takes no slot never builds its functions.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).with_name("lua")


@dataclass(frozen=True)
class LuaScript:
    """A script's text, its SHA1 (its name in Redis's script cache) and its function's name.

    ``body_at`` is where its own body starts in ``text``: what comes before is the prelude's
    functions and the libraries, which a function library builds once (see :attr:`library`).
    """

    name: str
    text: str
    body_at: int = 0
    sha: str = field(init=False)
    function: str = field(init=False)

    def __post_init__(self) -> None:
        sha = hashlib.sha1(self.text.encode()).hexdigest()
        object.__setattr__(self, "sha", sha)
        object.__setattr__(self, "function", f"chatstate_{sha}")

    @property
    def library(self) -> str:
        """The script as a Redis 7 function library (``FUNCTION LOAD``) of one function.

        Its functions are built on its first call after a load, not on every call. The
        body runs as it does under ``EVALSHA``, with ``KEYS`` and ``ARGV`` set per call."""
        shared, body = self.text[: self.body_at], self.text[self.body_at :]
        # Standard libraries (string, cjson) are not there while a library loads: the
        # shared part is built on the first call instead. (A function has no
        # redis.replicate_commands: the prelude's guarded call of it does nothing there.)
        return (
            f"#!lua name={self.function}\n"
            "local KEYS, ARGV\nlocal run = false\nlocal function build()\n"
            f"{shared}\nreturn function()\n{body}\nend\nend\n"
            f"redis.register_function('{self.function}', function(keys, args)\n"
            "KEYS, ARGV = keys, args\nif not run then run = build() end\nreturn run()\nend)\n"
        )

    @classmethod
    def load(cls, name: str, *libraries: str) -> LuaScript:
        """``lua/<name>.lua`` after the prelude's functions it needs and the ``libraries``
        (``lua/*.lua`` defining functions only some scripts use: the others do not pay for
        them). A line
        ``-- @<library>`` of the body is replaced by that library: inside the branch that needs
        it, so the script's other paths never build its functions."""
        parts = [_read(part) for part in (*libraries, name)]
        head, top = prelude_for("".join(parts))

        def expand(text: str) -> str:
            # an inlined library brings the prelude's functions only it names along with it
            return _INLINE.sub(lambda found: _inline(found.group(1), top), text)

        shared = head + "".join(expand(part) for part in parts[:-1])
        label = name if not libraries else f"{name}+{'+'.join(libraries)}"
        return cls(label, shared + expand(parts[-1]), len(shared))


_INLINE = re.compile(r"^[ \t]*-- @(\w+)[ \t]*\n", re.MULTILINE)
#: A top-level function of the prelude, with the comment lines right above it.
_FUNCTION = re.compile(r"^(?:--[^\n]*\n)*local function (\w+)", re.MULTILINE)


@functools.cache
def _read(part: str) -> str:
    return (LUA / f"{part}.lua").read_text(encoding="utf-8")


def prelude_parts(prelude: str) -> tuple[str, list[tuple[str, str]]]:
    """The prelude's head (kept by every script) and its functions, each (name, text)."""
    found = list(_FUNCTION.finditer(prelude))
    ends = [m.start() for m in found[1:]] + [len(prelude)]
    head = prelude[: found[0].start()] if found else prelude
    pairs = zip(found, ends, strict=True)
    return head, [(m.group(1), prelude[m.start() : end]) for m, end in pairs]


def prelude_for(text: str, present: frozenset[str] = frozenset()) -> tuple[str, frozenset[str]]:
    """The prelude's head and the functions ``text`` names, and those they name in turn,
    but those ``present`` (already defined); and the names now defined. Lua builds a
    script's functions each time it runs (about 500 instructions each): a script carries
    only those it may call."""
    head, parts, calls = _prelude()
    named = set(present)
    wanted = _names(_COMMENT.sub("", text)) & calls.keys()
    while wanted - named:
        found = wanted - named
        named |= found
        wanted = set().union(*(calls[n] for n in found))
    chosen = "".join(part for name, part in parts if name in named and name not in present)
    return ("" if present else head) + chosen, frozenset(named)


@functools.cache
def _prelude() -> tuple[str, list[tuple[str, str]], dict[str, frozenset[str]]]:
    """The prelude's head, its functions, and the prelude's functions each one names."""
    head, parts = prelude_parts(_read("prelude"))
    calls = {name: _names(_COMMENT.sub("", part)) for name, part in parts}
    return head, parts, {name: frozenset(calls[name] & calls.keys()) for name in calls}


def _inline(library: str, present: frozenset[str]) -> str:
    """``lua/<library>.lua`` for a ``-- @<library>`` line, after the prelude's functions it
    names that the script does not define already."""
    text = _read(library)
    return prelude_for(text, present)[0] + text


_COMMENT = re.compile(r"(?:^|(?<=\s))--[^\n]*", re.MULTILINE)


def _names(code: str) -> set[str]:
    """The names Lua ``code`` uses (not as a field: ``x.name``, ``x:name``)."""
    return set(_NAME.findall(code))


_NAME = re.compile(r"(?<![\w.:])([A-Za-z_]\w*)")


CLAIM = LuaScript.load("claim")
IS_DUPLICATE = LuaScript.load("is_duplicate")
LOCK = LuaScript.load("lock")
#: Slots (capped ``concurrent``): the scripts that may meet a key held by slots carry the
#: slots library inside their slot branches (``-- @slots``), so their other paths cost what
#: they did before slots existed.
LOCK_SLOT = LuaScript.load("lock_slot")
EXTEND = LuaScript.load("extend")
RELEASE = LuaScript.load("release")
COMPARE_AND_SET = LuaScript.load("compare_and_set")
CYCLE_ENTER = LuaScript.load("cycle_enter")
#: A step's staged effects (channel operations, subscription, lists, outbox, entries
#: gathered) need the effects library; the common step with none runs without it (no extra
#: work per cycle).
EFFECTS = ("channel", "lists", "outbox", "effects")
#: (channel operations, list appends, sends) staged → the step's script: each carries the
#: libraries of the kinds staged only (building a library's functions costs each run).
Kinds = tuple[bool, bool, bool]


def _step_variants(name: str) -> dict[Kinds, LuaScript]:
    """The step ``name`` with each combination of the channel, lists and outbox libraries."""
    libraries = ("channel", "lists", "outbox")
    variants = {}
    for channel, lists, sends in itertools.product((False, True), repeat=3):
        kinds = zip(libraries, (channel, lists, sends), strict=True)
        chosen = [lib if on else f"no_{lib}" for lib, on in kinds]
        variants[channel, lists, sends] = LuaScript.load(name, *chosen, "effects")
    return variants


CYCLE_COMMIT = LuaScript.load("cycle_commit", "no_effects")
CYCLE_COMMIT_STAGED = _step_variants("cycle_commit")
CYCLE_COMMIT_EFFECTS = CYCLE_COMMIT_STAGED[True, True, True]
CYCLE_DRAIN = LuaScript.load("cycle_drain", "no_effects")
CYCLE_DRAIN_STAGED = _step_variants("cycle_drain")
CYCLE_DRAIN_EFFECTS = CYCLE_DRAIN_STAGED[True, True, True]
CYCLE_RENEW = LuaScript.load("cycle_renew")
CYCLE_GATHER = LuaScript.load("cycle_gather")
CYCLE_ABORT = LuaScript.load("cycle_abort")
TAKE_PENDING = LuaScript.load("take_pending")
PUT_STATE = LuaScript.load("put_state")
SUBSCRIBE = LuaScript.load("subscribe")
PRUNE = LuaScript.load("prune")
LOAD_REPLACE = LuaScript.load("load_replace", "load_lists")
LOAD_MERGE = LuaScript.load("load_merge", "load_lists")
FREEZE = LuaScript.load("freeze")
SORT_CHUNK = LuaScript.load("sort_chunk")
HASH_PAGE = LuaScript.load("hash_page")
LIST_APPEND = LuaScript.load("list_append", "lists")
LIST_DELETE = LuaScript.load("list_delete")
OUTBOX_LIST = LuaScript.load("outbox_list")
OUTBOX_CLAIM = LuaScript.load("outbox_claim", "outbox")
OUTBOX_SETTLE = LuaScript.load("outbox_settle", "outbox")

#: Every script, e.g. to preload them (``FUNCTION LOAD``, ``SCRIPT LOAD``) on a new server.
ALL = (
    CLAIM,
    IS_DUPLICATE,
    LOCK,
    LOCK_SLOT,
    EXTEND,
    RELEASE,
    COMPARE_AND_SET,
    CYCLE_ENTER,
    CYCLE_COMMIT,
    *CYCLE_COMMIT_STAGED.values(),
    CYCLE_DRAIN,
    *CYCLE_DRAIN_STAGED.values(),
    CYCLE_RENEW,
    CYCLE_GATHER,
    CYCLE_ABORT,
    TAKE_PENDING,
    PUT_STATE,
    SUBSCRIBE,
    PRUNE,
    LOAD_REPLACE,
    LOAD_MERGE,
    FREEZE,
    SORT_CHUNK,
    HASH_PAGE,
    LIST_APPEND,
    LIST_DELETE,
    OUTBOX_LIST,
    OUTBOX_CLAIM,
    OUTBOX_SETTLE,
)
