"""The cross-entry rules of a snapshot file's keyed sections, decided once every section is read.

- ``subscriptions``: no id twice.
- ``dedupe`` and ``dedupe_order``: no key twice in either, and the same keys in both.
- ``claims``: no key twice, and every key in ``dedupe``.
- ``outbox``: no key twice.

There are three ways, fastest first. On hashes, when nothing repeats and the fingerprints
agree; there is nothing to word. In memory, when
:class:`~chatstate.snapshots.files.seen.Seen` kept every key of the sections involved. The
duplicates were worded as read, and the rest is set arithmetic. Else exactly, in the
temporary database of :mod:`chatstate.snapshots.files.ledger`. The problems come out as
``Scan`` words them, in its order."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from itertools import islice
from typing import Any, Protocol

from chatstate.snapshots.checks import DedupeKey, Problem, as_dedupe_key, as_id
from chatstate.snapshots.files.facts import MAX_LISTED, ArrayFacts, Bucket, KeyedFacts
from chatstate.snapshots.files.ledger import Ledger
from chatstate.snapshots.scan import Scan

_NO_SUMS = (0, 0)


class _File(Protocol):
    exact: set[str]
    memory: set[str]

    def get_ledger(self) -> Ledger: ...

    def elements(self, name: str) -> Iterator[Any]: ...


class Groups:
    """The problems and counts of the keyed sections of one file.

    It takes pass 1's ``facts`` and the ``typed`` problems of sections of a wrong type. It
    records in ``file.exact`` the groups whose lenient repairs need the ledger. It records
    in ``file.memory`` those made in memory."""

    def __init__(
        self, file: _File, facts: dict[str, Any], typed: dict[str, Bucket], strict: bool
    ) -> None:
        self.file = file
        self.strict = strict
        self.typed = typed
        self.counts: dict[str, int] = {}
        self._buckets: list[Bucket] = []
        self._claims = typed.get("claims", Bucket())
        self._outbox = typed.get("outbox", Bucket())
        self._subscriptions(facts.get("subscriptions"))
        self._dedupe(facts.get("dedupe"), facts.get("dedupe_order"), facts.get("claims"))
        self._outbox_group(facts.get("outbox"))

    def buckets(self) -> list[Bucket]:
        """``subscriptions``, ``dedupe``, ``dedupe_order``, then their mismatch."""
        return self._buckets

    def claims_bucket(self) -> Bucket:
        return self._claims

    def outbox_bucket(self) -> Bucket:
        return self._outbox

    def _section(self, name: str, facts: ArrayFacts | None) -> Bucket:
        if name in self.typed:
            return self.typed[name]
        return facts.as_read() if facts is not None else Bucket()

    # -- subscriptions ---------------------------------------------------------------------

    def _subscriptions(self, facts: ArrayFacts | None) -> None:
        if facts is None or not facts.late_repeats():  # every duplicate was worded as read
            self._buckets.append(self._section("subscriptions", facts))
            self.counts["subscriptions"] = facts.count - facts.seen.repeats if facts else 0
            return
        ledger = self.file.get_ledger()
        ledger.fill_keys("subscriptions", self._rows("subscriptions"))
        bucket, repeated = self._with_duplicates(ledger, facts)
        self._buckets.append(bucket)
        self.counts["subscriptions"] = facts.count - repeated
        self.file.exact.add("subscriptions")

    # -- dedupe, dedupe_order, claims ------------------------------------------------------

    def _dedupe(
        self, dedupe: ArrayFacts | None, order: ArrayFacts | None, claims: KeyedFacts | None
    ) -> None:
        if self._clean(dedupe, order, claims):
            self._buckets += [self._section("dedupe", dedupe), self._section("dedupe_order", order)]
            self._buckets.append(Bucket())
            self.counts["dedupe"] = order.count if order is not None else 0
            if claims is not None:
                self._claims, self.counts["claims"] = claims.as_read(), claims.kept
            return
        parts = [f for f in (dedupe, order, claims) if f is not None]
        if all(f.seen.complete for f in parts):
            self._dedupe_in_memory(dedupe, order, claims)
            self.file.memory.add("dedupe")
        else:
            self._dedupe_exact(dedupe, order, claims)

    def _clean(
        self, dedupe: ArrayFacts | None, order: ArrayFacts | None, claims: KeyedFacts | None
    ) -> bool:
        """Whether the rules hold, judged on hashes.

        No key is there twice. Both sections hold the same multiset of keys, by fingerprint.
        Every claim's key is in ``dedupe``. No claim key is there twice."""
        if any(f is not None and f.repeats() for f in (dedupe, order)):
            return False
        if (dedupe.sums if dedupe else _NO_SUMS) != (order.sums if order else _NO_SUMS):
            return False
        if claims is None or (not claims.seen.first and claims.seen.complete):
            return True
        if claims.seen.repeats or claims.late_repeats() or dedupe is None:
            return False
        known = dedupe.seen.first
        needles = {hash(key) for key in claims.seen.first if key not in known}
        needles.update(claims.seen.late.sorted())
        needles.difference_update(map(hash, known))  # (a hash of a key kept, yet read late)
        return dedupe.seen.late.contains_all(needles)

    def _dedupe_in_memory(
        self, dedupe: ArrayFacts | None, order: ArrayFacts | None, claims: KeyedFacts | None
    ) -> None:
        """The dedupe rules when ``Seen`` kept every key.

        The duplicates were worded as read. The mismatch and the claims' keys are set
        arithmetic."""
        in_dedupe: dict[Any, int] = dedupe.seen.first if dedupe else {}
        in_order: dict[Any, int] = order.seen.first if order else {}
        self._buckets += [self._section("dedupe", dedupe), self._section("dedupe_order", order)]
        only_dedupe = sorted(in_dedupe.keys() - in_order.keys())
        by_age = sorted(in_order.items(), key=operator.itemgetter(1))
        only_order = [key for key, _ in by_age if key not in in_dedupe]
        mismatch = Bucket()
        if self.strict:
            Scan(True, mismatch).mismatch(
                len(only_dedupe), only_dedupe[:3], len(only_order), only_order[:3]
            )
        self._buckets.append(mismatch)
        kept_order = order.count - order.seen.repeats if order else 0
        self.counts["dedupe"] = kept_order + len(only_dedupe)
        if claims is not None:
            first = claims.seen.first

            def status(index: int, key: DedupeKey) -> str | None:
                if first[key] < index:
                    return f"duplicate of claims[{first[key]}]"
                return None if key in in_dedupe or key in in_order else "not in dedupe"

            self._claims_again(status)

    def _dedupe_exact(
        self, dedupe: ArrayFacts | None, order: ArrayFacts | None, claims: KeyedFacts | None
    ) -> None:
        ledger = self.file.get_ledger()
        self.file.exact.add("dedupe")
        kept_order = 0
        for name, facts in (("dedupe", dedupe), ("dedupe_order", order)):
            if facts is None:
                self._buckets.append(self._section(name, facts))
                continue
            ledger.fill_keys(name, self._rows(name))
            bucket, repeated = self._with_duplicates(ledger, facts)
            self._buckets.append(bucket)
            if name == "dedupe_order":
                kept_order = facts.count - repeated
        only_dedupe, first_dedupe = _count(ledger.only_in_dedupe())
        only_order, first_order = _count(ledger.only_in_order())
        mismatch = Bucket()
        if self.strict:
            Scan(True, mismatch).mismatch(only_dedupe, first_dedupe, only_order, first_order)
        self._buckets.append(mismatch)
        self.counts["dedupe"] = kept_order + only_dedupe
        if claims is not None:
            self._claims_exact(ledger)

    def _rows(self, name: str) -> Iterator[tuple[int, str, str]]:
        """``(index, a, m)`` of each valid entry of an array section, read again."""
        for index, raw in enumerate(self.file.elements(name)):
            if name == "subscriptions":
                if as_id(raw) is not None:
                    yield index, raw, ""
            else:
                key = as_dedupe_key(raw)
                if key is not None:
                    yield index, key[0], key[1]

    def _with_duplicates(self, ledger: Ledger, facts: ArrayFacts) -> tuple[Bucket, int]:
        """The entry problems of ``facts`` with every duplicate the ledger words.

        Those worded as read are among them."""
        name = facts.name
        repeated = ledger.count_duplicates(name)
        tagged = (
            (index, 0, Problem(f"{name}[{index}]", f"duplicate of {name}[{first}]"))
            for index, first in islice(ledger.duplicates(name), MAX_LISTED)
        )
        return facts.bucket.merged(tagged, repeated), repeated

    def _claims_exact(self, ledger: Ledger) -> None:
        scan = Scan(self.strict)

        def rows() -> Iterator[tuple[int, str, str, int, Any, Any, Any]]:
            for index, raw in enumerate(self.file.elements("claims")):
                key, claim, _ = scan.claim(index, raw)
                if key is not None:
                    fields = (raw.get("owner"), raw.get("thread_id"), raw.get("expires_at"))
                    yield (index, key[0], key[1], int(claim is not None), *_plain(fields))

        ledger.fill_claims(rows())
        status = ledger.claim_rows()

        def problem(index: int, key: DedupeKey) -> str | None:
            row = next(status)
            first, known = row[7], row[8]
            if first < index:
                return f"duplicate of claims[{first}]"
            return None if known else "not in dedupe"

        self._claims_again(problem)

    def _claims_again(self, key_problem: Any) -> None:
        """The claims' problems and count, read again.

        ``key_problem(index, key)`` words each valid key's problem. It is called in index
        order."""
        bucket = Bucket()
        checker = Scan(self.strict, bucket)
        kept = 0
        for index, raw in enumerate(self.file.elements("claims")):
            key, claim, problems = checker.claim(index, raw)
            repeated = None if key is None else key_problem(index, key)
            bucket.index = index
            checker.claim_problems(index, repeated, problems)
            kept += key is not None and claim is not None and repeated is None
        self._claims = bucket
        self.counts["claims"] = kept

    # -- outbox ----------------------------------------------------------------------------

    def _outbox_group(self, facts: KeyedFacts | None) -> None:
        if facts is None:
            self.counts["outbox"] = 0
            return
        if not facts.late_repeats():  # every repeated key was worded as read
            self._outbox, self.counts["outbox"] = facts.as_read(), facts.kept
            return
        ledger = self.file.get_ledger()
        ledger.fill_keys("outbox", self._outbox_rows(facts))
        self.file.exact.add("outbox")
        firsts = first_indexes(ledger, "outbox")
        bucket = Bucket()
        checker = Scan(self.strict, bucket)
        kept = 0
        for index, raw in enumerate(self.file.elements("outbox")):
            key, entry, problems = facts.entry(index, raw)
            repeated = None
            if facts.registers(key, entry):
                first = firsts(index)
                repeated = None if first == index else f"duplicate of outbox[{first}]"
            bucket.index = index
            facts.report(checker, index, repeated, problems)
            kept += entry is not None and repeated is None
        self._outbox, self.counts["outbox"] = bucket, kept

    def _outbox_rows(self, facts: KeyedFacts) -> Iterator[tuple[int, str, str]]:
        for index, raw in enumerate(self.file.elements("outbox")):
            key, entry, _ = facts.entry(index, raw)
            if facts.registers(key, entry):
                yield index, key, ""


def first_indexes(ledger: Ledger, name: str) -> Any:
    """``first(index)``: the index of the first entry with the key of the entry at ``index``.

    It is called in increasing index order for each registered entry."""
    rows = ledger.key_rows(name)

    def first(index: int) -> int:
        row_index, row_first = next(rows)
        assert row_index == index, "the ledger holds the registered entries, in order"
        return int(row_first)

    return first


def _plain(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Values SQLite can hold as they are; valid claims hold only text."""
    return tuple(value if isinstance(value, str) else None for value in values)


def _count(keys: Iterator[tuple[str, str]]) -> tuple[int, list[DedupeKey]]:
    first = list(islice(keys, 3))
    return len(first) + sum(1 for _ in keys), first


def kept_ids(ledger: Ledger) -> Iterator[str]:
    """Each subscription once, in the file's order, for a lenient read."""
    for thread_id, _ in ledger.first_occurrences("subscriptions"):
        yield thread_id


def kept_order(ledger: Ledger) -> Iterator[DedupeKey]:
    """The order's keys once each, then the keys only in ``dedupe``, sorted; for a lenient read."""
    yield from ledger.first_occurrences("dedupe_order")
    yield from ledger.only_in_dedupe()


def kept_claims(ledger: Ledger) -> Iterator[tuple[DedupeKey, dict[str, Any]]]:
    """The claims a lenient read keeps: valid, first with their key, the key in ``dedupe``."""
    for index, a, m, ok, owner, thread_id, expires_at, first, known in ledger.claim_rows():
        if ok and first == index and known:
            yield (a, m), {"owner": owner, "thread_id": thread_id, "expires_at": expires_at}
