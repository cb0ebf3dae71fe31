"""``manage.py chatstate_restore``: check everything first, then replace or merge, all or
nothing; dry run, lenient, stdin. SQLite run: the ORM path; PostgreSQL run: ``COPY``."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.models import DedupeEntry, DedupeWindow
from chatstate.snapshots.sections import SnapshotSections
from chatstate.snapshots.snapshot import InvalidSnapshot, Snapshot, normalize_snapshot_counting
from tests.commands.test_commands_snapshot import adapter_path, namespace, populate, run

pytestmark = pytest.mark.django_db(transaction=True)

T0 = "2030-01-02T03:04:05.123456Z"
T1 = "2030-01-02T03:09:05.000001Z"


def export(store: DatabaseStateAdapter, path: Path, indent: int | None = None) -> bytes:
    args = [] if indent is None else ["--indent", str(indent)]
    run("chatstate_snapshot", "--namespace", store.namespace, "--output", str(path), *args)
    return path.read_bytes()


def restore(path: Path | str, ns: str, *args: str, **options: Any) -> tuple[str, str]:
    return run("chatstate_restore", str(path), "--namespace", ns, *args, **options)


def assert_window_consistent(ns: str) -> None:
    """Dedupe entries carry seq 1..n in ``dedupe_order`` order and the window's head is n."""
    entries = DedupeEntry.objects.filter(namespace=ns).order_by("seq")
    seqs = list(entries.values_list("seq", flat=True))
    head = DedupeWindow.objects.filter(namespace=ns).values_list("head", flat=True).first()
    assert seqs == list(range(1, len(seqs) + 1))
    assert (head or 0) == len(seqs)


def write(tmp_path: Path, obj: Any, name: str = "in.json") -> Path:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return path


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidSnapshot) as info:
        Snapshot.from_json(text.encode("utf-8", "surrogatepass"))
    return info.value.problems


# -- round trip ----------------------------------------------------------------------------


@pytest.mark.parametrize("indent", [None, 2])
def test_round_trip_into_another_namespace(tmp_path: Path, indent: int | None) -> None:
    source = populate(namespace())
    text = export(source, tmp_path / "a.json", indent)
    target = DatabaseStateAdapter(namespace=namespace())
    target.subscribe("stale")  # replaced
    target.claim_dedupe(("old", "k"), 10)  # just now: quiet for 0 s, no lock, no claim live
    out, err = restore(tmp_path / "a.json", target.namespace, "--quiet-for", "0")
    assert target.snapshot() == source.snapshot()  # timestamps included
    assert export(target, tmp_path / "b.json", indent) == text  # byte for byte
    assert f"Restored into namespace '{target.namespace}' (replace)" in out
    assert "dedupe" in out and "6" in out and err == ""
    assert_window_consistent(target.namespace)
    # The restored window keeps working: new claims go after it and trim the oldest.
    assert target.claim_dedupe(("slack", "new"), 6) is True
    assert target.snapshot().dedupe_order == [*source.snapshot().dedupe_order[1:], ("slack", "new")]
    assert target.claim_dedupe(("slack", "m0"), 6) is False


ODD = "tab\there\nnew\\line\r\\N é"  # what COPY's text format must escape


def test_restore_of_a_large_namespace(tmp_path: Path) -> None:
    snapshot = Snapshot(
        subscriptions={f"t{i}" for i in range(3000)} | {ODD},
        dedupe={("a", f"m{i}") for i in range(12000)},
        dedupe_order=[("a", f"m{i}") for i in reversed(range(12000))],
        thread_state={f"t{i}": {"n": i, "s": "é" * (i % 5)} for i in range(2500)}
        | {ODD: {"text": ODD, "\\": ["\\N", "\r\n"]}},
        locks={
            f"k{i}": {
                "owner": "o",
                "strategy": "queue",
                "metadata": {"i": i},
                "acquired_at": T0,
                "expires_at": T1,
            }
            for i in range(300)
        },
        pending_locks={
            f"k{i}": [
                {"owner": f"p{j}", "strategy": "queue", "metadata": {}, "enqueued_at": T1}
                for j in range(3)
            ]
            for i in range(300)
        },
    )
    path = write(tmp_path, snapshot.to_json())
    target = DatabaseStateAdapter(namespace=namespace())
    restore(path, target.namespace)
    assert target.snapshot() == snapshot
    assert_window_consistent(target.namespace)


# -- bad input: every problem with its path, nothing changed -------------------------------


GOOD = Snapshot(
    subscriptions={"t1"},
    dedupe={("s", "m1"), ("s", "m2")},
    dedupe_order=[("s", "m1"), ("s", "m2")],
    thread_state={"t1": {"n": 1}},
).to_dict()

BAD_DOCUMENTS = {
    "bad entry": {**GOOD, "dedupe_order": [["s", "m1"], ["s"], ["s", "m2"]]},
    "many problems": {
        **GOOD,
        "subscriptions": ["ok", "", 3, "ok"],
        "thread_state": {"t": [1]},
        "locks": {"k": {"owner": "", "strategy": "nope", "metadata": {}}},
        "extra": 1,
    },
    "dedupe mismatch": {**GOOD, "dedupe": [["s", "m1"]]},
    "wrong format": {**GOOD, "format": "something.else"},
    "newer version": {**GOOD, "version": 4},
    "claims in version 1": {**GOOD, "version": 1, "claims": []},
    "lists and outbox in version 2": {**GOOD, "version": 2, "lists": {}, "outbox": []},
    "bad lists": {
        **GOOD,
        "lists": {
            "history:t1": {"items": [1, {"n": "\udc00"}], "expires_at": "tomorrow"},
            "x" * 321: {"items": [], "expires_at": None},
            "k": {"items": "nope", "expires_at": None},
            "e": {"items": []},
        },
    },
    "bad outbox": {
        **GOOD,
        "outbox": [
            {"key": "r1", "thread_id": "t1", "payload": {}, "attempts": -1, "dead": 0},
            {
                "key": "r1",
                "thread_id": "",
                "payload": 1,
                "attempts": 0,
                "dead": False,
                "created_at": T0,
                "due_at": "later",
                "x": 1,
            },
            [],
        ],
    },
    "NUL and surrogates": {
        **GOOD,
        "subscriptions": ["t\x00"],
        "dedupe": [["s", "m1"], ["s\ud800", "m2"]],
        "thread_state": {"t1": {"a": {"b\x00": ["\udc00"]}}, "t\x00": {}},
        "claims": [
            {
                "key": ["s", "m1"],
                "owner": "w\x00",
                "thread_id": "t",
                "expires_at": "2030-01-01T00:00:00Z",
            }
        ],
    },
    "bad claims": {
        **GOOD,
        "claims": [
            {"key": ["s", "nope"], "owner": "w", "thread_id": "t", "expires_at": T0},
            {"key": ["s", "m1"], "owner": "w", "thread_id": "t", "expires_at": "soon", "x": 1},
            {"key": ["s", "m1"], "owner": "", "thread_id": "t", "expires_at": T0},
        ],
    },
    "no header": {k: v for k, v in GOOD.items() if k not in ("format", "version")},
    "bad timestamp": {
        **GOOD,
        "pending_locks": {
            "k": [{"owner": "o", "strategy": "queue", "metadata": {}, "enqueued_at": "yesterday"}]
        },
    },
    "bad json": json.dumps(GOOD)[:-12] + "]]}",
    "not an object": "[1, 2]",
    "repeated key": json.dumps(GOOD)[:-1] + ', "subscriptions": []}',
    "NaN": json.dumps(GOOD).replace('"n": 1', '"n": NaN'),
    "nested repeated key": json.dumps(GOOD).replace('"n": 1', '"n": 1, "n": 2'),
    "huge integer": json.dumps(GOOD).replace('"n": 1', '"n": ' + "7" * 5000),
    "deep nesting": json.dumps(GOOD).replace('"n": 1', '"n": ' + "[" * 600 + "]" * 600),
    "empty": "",
}


@pytest.mark.parametrize("case", list(BAD_DOCUMENTS))
def test_bad_input_is_refused_with_every_problem(tmp_path: Path, case: str) -> None:
    doc = BAD_DOCUMENTS[case]
    text = doc if isinstance(doc, str) else json.dumps(doc, indent=1, ensure_ascii=False)
    path = tmp_path / "in.json"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    store = populate(namespace())
    before = store.snapshot()
    # (populated just now, the namespace is live: --force, so that the file decides)
    for extra in (["--force"], ["--merge"], ["--dry-run"]):
        with pytest.raises(CommandError, match="not a valid snapshot.*nothing was changed"):
            restore(path, store.namespace, *extra, stderr=(err := io.StringIO()))
        assert err.getvalue().splitlines() == problems_of(text)
    assert all(": " in line for line in problems_of(text))  # every problem has a path
    assert store.snapshot() == before


def test_the_printed_paths(tmp_path: Path) -> None:
    path = write(tmp_path, BAD_DOCUMENTS["bad entry"])
    with pytest.raises(CommandError, match=r"\(1 problem, listed above\)"):
        restore(path, namespace(), stderr=(err := io.StringIO()))
    assert err.getvalue() == "dedupe_order[1]: expected [adapter, message_id]\n"
    path = write(tmp_path, BAD_DOCUMENTS["newer version"])
    with pytest.raises(CommandError):
        restore(path, namespace(), stderr=(err := io.StringIO()))
    assert err.getvalue() == "version: unsupported version 4 (this code reads 1, 2 and 3)\n"
    path = write(tmp_path, BAD_DOCUMENTS["NUL and surrogates"])
    with pytest.raises(CommandError, match=r"\(7 problems, listed above\)"):
        restore(path, namespace(), stderr=(err := io.StringIO()))
    assert err.getvalue().splitlines() == [
        "subscriptions[0]: contains a NUL character (U+0000)",
        "dedupe[1][0]: contains a lone surrogate (U+D800), which is not text",
        'dedupe: missing keys present in dedupe_order: 1 (["s", "m2"])',
        "thread_state['t1'].a['b\\x00']: its key contains a NUL character (U+0000)",
        "thread_state['t1'].a['b\\x00'][0]: contains a lone surrogate (U+DC00), which is not text",
        "thread_state['t\\x00']: its key contains a NUL character (U+0000)",
        "claims[0].owner: contains a NUL character (U+0000)",
    ]


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    store = populate(namespace())
    before = store.snapshot()
    missing = tmp_path / "missing.json"
    with pytest.raises(CommandError) as refused:
        restore(missing, store.namespace, stderr=(err := io.StringIO()))
    # Issue 22: the reason, once, without a JSON path ("$:"): the file is not a document.
    assert str(refused.value) == (
        f"cannot read {missing}: No such file or directory; nothing was changed"
    )
    assert err.getvalue() == ""
    with pytest.raises(CommandError, match=r"cannot read .*: Is a directory; nothing"):
        restore(tmp_path, store.namespace, stderr=io.StringIO())  # a directory
    bad = tmp_path / "latin1.json"
    bad.write_bytes(json.dumps(GOOD).replace('"t1"', '"t\xe9"').encode("latin-1"))
    with pytest.raises(CommandError, match="not a valid snapshot"):
        restore(bad, store.namespace, "--force", stderr=(err := io.StringIO()))
    assert err.getvalue().startswith("$: invalid JSON: 'utf-8' codec can't decode byte 0xe9")
    assert store.snapshot() == before


class FailingLoadAdapter(DatabaseStateAdapter):
    """Fails after the load has started writing: the last section breaks midway."""

    def load_snapshot_stream(self, sections: SnapshotSections, merge: bool = False) -> None:
        pending = list(sections.pending_locks)

        def broken() -> Any:
            yield pending[0]
            raise RuntimeError("load failed midway")

        sections.pending_locks = broken()
        super().load_snapshot_stream(sections, merge)


@pytest.mark.parametrize("merge", [[], ["--merge"]])
def test_a_failed_load_changes_nothing(tmp_path: Path, merge: list[str]) -> None:
    source = populate(namespace())
    export(source, tmp_path / "a.json")
    target = DatabaseStateAdapter(namespace=namespace())
    target.subscribe("kept")
    target.claim_dedupe(("old", "k"), 10)
    before = target.snapshot()
    with (
        adapter_path("tests.commands.test_commands_restore.FailingLoadAdapter"),
        pytest.raises(RuntimeError, match="midway"),
    ):
        restore(tmp_path / "a.json", target.namespace, "--quiet-for", "0", *merge)
    assert target.snapshot() == before
    assert_window_consistent(target.namespace)


# -- merge ---------------------------------------------------------------------------------


def incoming_and_existing() -> tuple[Snapshot, Snapshot]:
    lock = {"owner": "w1", "strategy": "queue", "metadata": {}, "acquired_at": T0, "expires_at": T1}
    entry = {"owner": "p", "strategy": "queue", "metadata": {"m": 1}, "enqueued_at": T0}
    existing = Snapshot(
        subscriptions={"a", "b"},
        dedupe={("s", "1"), ("s", "2"), ("s", "3")},
        dedupe_order=[("s", "1"), ("s", "2"), ("s", "3")],
        thread_state={"a": {"v": 1}, "b": {"v": 2}},
        channel_state={"c": {"topic": "old"}},
        locks={"k1": lock, "k2": lock},
        pending_locks={"k1": [entry]},
    )
    incoming = Snapshot(
        subscriptions={"b", "c"},
        dedupe={("s", "2"), ("s", "9"), ("s", "8")},
        dedupe_order=[("s", "9"), ("s", "2"), ("s", "8")],
        thread_state={"b": {"v": 20}, "c": {"v": 3}},
        channel_state={"c": {"topic": "new"}},
        locks={"k2": {**lock, "owner": "w2"}, "k3": lock},
        pending_locks={"k1": [{**entry, "owner": "q"}], "k3": [entry]},
    )
    return existing, incoming


def test_merge_adds_and_incoming_wins(tmp_path: Path) -> None:
    existing, incoming = incoming_and_existing()
    target = DatabaseStateAdapter(namespace=namespace())
    target.load_snapshot(existing)
    oracle = DatabaseStateAdapter(namespace=namespace())  # load_snapshot's own merge
    oracle.load_snapshot(existing)
    oracle.load_snapshot(incoming, merge=True)
    out, _ = restore(write(tmp_path, incoming.to_json()), target.namespace, "--merge")
    merged = target.snapshot()
    assert merged == oracle.snapshot()
    assert merged.dedupe_order == [("s", "1"), ("s", "2"), ("s", "3"), ("s", "9"), ("s", "8")]
    assert merged.subscriptions == {"a", "b", "c"}
    assert merged.thread_state == {"a": {"v": 1}, "b": {"v": 20}, "c": {"v": 3}}
    assert merged.locks["k2"]["owner"] == "w2" and set(merged.locks) == {"k1", "k2", "k3"}
    assert [e["owner"] for e in merged.pending_locks["k1"]] == ["p", "q"]
    assert "(merge)" in out
    assert_window_consistent(target.namespace)


# -- dry run -------------------------------------------------------------------------------


def test_dry_run_reports_and_changes_nothing(tmp_path: Path) -> None:
    existing, incoming = incoming_and_existing()
    target = DatabaseStateAdapter(namespace=namespace())
    target.load_snapshot(existing)
    before = target.snapshot()
    path = write(tmp_path, incoming.to_json())
    out, _ = restore(path, target.namespace, "--dry-run")
    assert target.snapshot() == before
    lines = out.splitlines()
    assert lines[0].startswith(f"namespace '{target.namespace}' is live: 2 locks held, ")
    assert lines[0].endswith(": a replace restore would be refused (stop the workers or --force).")
    assert lines[1] == f"Dry run (replace) into namespace '{target.namespace}'; would change:"
    assert lines[-1] == "Nothing was changed."
    report = {line.split()[0]: line.split(None, 1)[1] for line in lines[2:-1]}
    assert report == {
        "subscriptions": "added 1, replaced 0, removed 1, unchanged 1",
        "dedupe": "added 2, replaced 0, removed 2, unchanged 1",
        "thread_state": "added 1, replaced 1, removed 1, unchanged 0",
        "channel_state": "added 0, replaced 1, removed 0, unchanged 0",
        "locks": "added 1, replaced 1, removed 1, unchanged 0",
        "pending_locks": "added 1, replaced 1, removed 0, unchanged 0",
        "claims": "added 0, replaced 0, removed 0, unchanged 0",
        "lists": "added 0, replaced 0, removed 0, unchanged 0",
        "outbox": "added 0, replaced 0, removed 0, unchanged 0",
    }
    out, _ = restore(path, target.namespace, "--dry-run", "--merge")
    assert target.snapshot() == before
    lines = out.splitlines()
    assert lines[0].endswith(" ago.")  # live, but a merge is not refused
    report = {line.split()[0]: line.split(None, 1)[1] for line in lines[2:-1]}
    assert report["dedupe"] == "added 2, replaced 0, removed 0, unchanged 1"
    assert report["pending_locks"] == "added 1, replaced 0, appended 1, removed 0, unchanged 0"


# -- lenient -------------------------------------------------------------------------------


def test_lenient_loads_what_normalize_keeps(tmp_path: Path) -> None:
    doc = {
        **GOOD,
        "version": 7,
        "subscriptions": ["t1", "", "t1", "t2"],  # 2 dropped
        "dedupe": [["s", "m1"], ["s", "m2"], ["s", "m3"]],  # m3: only here, appended
        "thread_state": {"t1": {"n": 1}, "t2": "not a map"},  # 1 dropped
        "unknown": True,  # 1 dropped
    }
    path = write(tmp_path, doc)
    target = populate(namespace())
    with pytest.raises(CommandError, match="not a valid snapshot"):
        restore(path, target.namespace, "--force")
    out, err = restore(path, target.namespace, "--lenient", "--force", stderr=(e := io.StringIO()))
    expected, dropped = normalize_snapshot_counting(doc)
    assert dropped == 4
    assert target.snapshot() == expected
    assert out.splitlines()[:5] == [
        "Lenient: dropped 4 entries that normalize_snapshot could not keep:",
        "  dropped unknown: unknown key",
        "  dropped subscriptions[1]: expected a non-empty string of at most 255 characters",
        "  dropped subscriptions[2]: duplicate of subscriptions[0]",
        "  dropped thread_state['t2']: expected an object",
    ]
    assert "warning (ignored by --lenient): version: unsupported version 7" in e.getvalue()


def test_lenient_still_refuses_broken_json(tmp_path: Path) -> None:
    path = write(tmp_path, BAD_DOCUMENTS["bad json"])
    with pytest.raises(CommandError, match="not a valid snapshot"):
        restore(path, namespace(), "--lenient", stderr=io.StringIO())


# -- stdin ---------------------------------------------------------------------------------


def test_stdin_dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = populate(namespace())
    text = export(source, tmp_path / "a.json")
    target = DatabaseStateAdapter(namespace=namespace())
    restore("-", target.namespace, stdin=io.StringIO(text.decode()))
    assert target.snapshot() == source.snapshot()
    other = DatabaseStateAdapter(namespace=namespace())
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text), encoding="utf-8"))
    restore("-", other.namespace)
    assert other.snapshot() == source.snapshot()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"{]"), encoding="utf-8"))
    with pytest.raises(CommandError, match="- is not a valid snapshot"):
        restore("-", other.namespace, "--force", stderr=(err := io.StringIO()))
    assert err.getvalue().startswith("$: invalid JSON: Expecting property name")
    assert other.snapshot() == source.snapshot()
