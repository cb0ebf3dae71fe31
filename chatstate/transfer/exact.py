"""The cross-entry rules of a snapshot file's key sections, decided on hashes and, when the
hashes show a problem (or, lenient, a repair), worked out exactly in the temporary database
of :mod:`chatstate.transfer.ledger`:

- ``subscriptions``: no id twice;
- ``dedupe``, ``dedupe_order``: no key twice in either, the same keys in both;
- ``claims``: no key twice, every key in ``dedupe``.

The problems come out as ``Scan`` words them, in its order.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any, Protocol

from chatstate.snapshot_checks import DedupeKey, Problem, as_dedupe_key, as_id
from chatstate.snapshot_scan import Scan
from chatstate.transfer.facts import MAX_LISTED, ArrayFacts, Bucket, ClaimFacts
from chatstate.transfer.hashruns import HashRuns
from chatstate.transfer.ledger import Ledger

_NO_SUMS = (0, 0)


class _File(Protocol):
    exact: set[str]

    def get_ledger(self) -> Ledger: ...

    def _elements(self, name: str) -> Iterator[Any]: ...


class Groups:
    """The problems (and counts) of the key sections of one file, given pass 1's ``facts``
    and the ``typed`` problems of sections of a wrong type."""

    def __init__(
        self, file: _File, facts: dict[str, Any], typed: dict[str, Bucket], strict: bool
    ) -> None:
        self.file = file
        self.strict = strict
        self.typed = typed
        self.counts: dict[str, int] = {}
        self._buckets: list[Bucket] = []
        self._claims = typed.get("claims", Bucket())
        self._subscriptions(facts.get("subscriptions"))
        self._dedupe(facts.get("dedupe"), facts.get("dedupe_order"), facts.get("claims"))

    def buckets(self) -> list[Bucket]:
        """``subscriptions``, ``dedupe``, ``dedupe_order``, then their mismatch."""
        return self._buckets

    def claims_bucket(self) -> Bucket:
        return self._claims

    def _section(self, name: str, facts: ArrayFacts | None) -> Bucket:
        if name in self.typed:
            return self.typed[name]
        return facts.bucket if facts is not None else Bucket()

    def _subscriptions(self, facts: ArrayFacts | None) -> None:
        self.counts["subscriptions"] = facts.count if facts is not None else 0
        if facts is None or not facts.has_repeats():
            self._buckets.append(self._section("subscriptions", facts))
            return
        ledger = self.file.get_ledger()
        ledger.fill_keys("subscriptions", self._rows("subscriptions"))
        bucket, repeated = self._with_duplicates(ledger, facts)
        self._buckets.append(bucket)
        self.counts["subscriptions"] -= repeated
        self.file.exact.add("subscriptions")

    def _dedupe(
        self, dedupe: ArrayFacts | None, order: ArrayFacts | None, claims: ClaimFacts | None
    ) -> None:
        sums = dedupe.runs.sums if dedupe is not None else _NO_SUMS
        clean = (
            (dedupe is None or not dedupe.has_repeats())
            and sums == (order.runs.sums if order is not None else _NO_SUMS)
            and (claims is None or claims.clean_keys(dedupe.runs if dedupe else HashRuns()))
        )
        if clean:
            self._buckets += [self._section("dedupe", dedupe), self._section("dedupe_order", order)]
            self._buckets.append(Bucket())
            self.counts["dedupe"] = order.count if order is not None else 0
            if claims is not None:
                self._claims, self.counts["claims"] = claims.bucket, claims.kept
            return
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
        for index, raw in enumerate(self.file._elements(name)):
            if name == "subscriptions":
                if as_id(raw) is not None:
                    yield index, raw, ""
            else:
                key = as_dedupe_key(raw)
                if key is not None:
                    yield index, key[0], key[1]

    def _with_duplicates(self, ledger: Ledger, facts: ArrayFacts) -> tuple[Bucket, int]:
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
            for index, raw in enumerate(self.file._elements("claims")):
                key, claim, _ = scan.claim(index, raw)
                if key is not None:
                    fields = (raw.get("owner"), raw.get("thread_id"), raw.get("expires_at"))
                    yield (index, key[0], key[1], int(claim is not None), *_plain(fields))

        ledger.fill_claims(rows())
        bucket = Bucket()
        checker = Scan(self.strict, bucket)
        status = ledger.claim_rows()
        kept = 0
        for index, raw in enumerate(self.file._elements("claims")):
            key, claim, problems = checker.claim(index, raw)
            key_problem = None
            if key is not None:
                row = next(status)
                first, known = row[7], row[8]
                if first < index:
                    key_problem = f"duplicate of claims[{first}]"
                elif not known:
                    key_problem = "not in dedupe"
            bucket.index = index
            checker.claim_problems(index, key_problem, problems)
            kept += key is not None and claim is not None and key_problem is None
        self._claims = bucket
        self.counts["claims"] = kept


def _plain(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Values SQLite can hold as they are (valid claims hold only text)."""
    return tuple(value if isinstance(value, str) else None for value in values)


def _count(keys: Iterator[tuple[str, str]]) -> tuple[int, list[DedupeKey]]:
    first = list(islice(keys, 3))
    return len(first) + sum(1 for _ in keys), first


def kept_ids(ledger: Ledger) -> Iterator[str]:
    """Lenient: each subscription once, in the file's order."""
    for thread_id, _ in ledger.first_occurrences("subscriptions"):
        yield thread_id


def kept_order(ledger: Ledger) -> Iterator[DedupeKey]:
    """Lenient: the order's keys once each, then the keys only in ``dedupe``, sorted."""
    yield from ledger.first_occurrences("dedupe_order")
    yield from ledger.only_in_dedupe()


def kept_claims(ledger: Ledger) -> Iterator[tuple[DedupeKey, dict[str, Any]]]:
    """Lenient: the claims kept (valid, first with their key, the key in ``dedupe``)."""
    for index, a, m, ok, owner, thread_id, expires_at, first, known in ledger.claim_rows():
        if ok and first == index and known:
            yield (a, m), {"owner": owner, "thread_id": thread_id, "expires_at": expires_at}
