"""What a replay did: each delivery's :class:`Outcome`, the promises checked against the
final thread states (:func:`problems`), and the tables and summary the commands print."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from example_project.bot.handler import HISTORY
from example_project.bot.message import thread_key


@dataclass
class Outcome:
    """One delivery's result: the HTTP status and the JSON body the webhook answered last;
    ``refused``: the errors of the earlier attempts answered 503 (and redelivered)."""

    step: int
    message: dict[str, Any]
    status: int
    body: dict[str, Any]
    refused: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """``handled``, ``queued``, ``duplicate``, or ``error`` (any other answer)."""
        if self.status in (200, 202) and self.body.get("status") in (
            "handled",
            "queued",
            "duplicate",
        ):
            return str(self.body["status"])
        return "error"


def drained_by(outcomes: Iterable[Outcome]) -> dict[str, str]:
    """Queued message id -> id of the delivery that processed it after its own."""
    return {mid: o.message["message_id"] for o in outcomes for mid in o.body.get("drained", [])}


def problems(outcomes: list[Outcome], threads: list[dict[str, Any]]) -> list[str]:
    """Every broken promise: an error answer, a message accepted (handled or queued) more
    than once, an accepted message never processed, a delivery's own message and the queued
    ones it drained not processed in that order one after the other (something overtook or
    came between them). ``[]`` when all went as guaranteed."""
    found = [
        f"step {o.step} {o.message['message_id']}: HTTP {o.status} {o.body}"
        for o in outcomes
        if o.kind == "error"
    ]
    failed = {o.message["message_id"] for o in outcomes if o.kind == "error"}
    accepted: dict[str, int] = {}
    thread_of: dict[str, str] = {}
    for o in outcomes:
        mid = o.message["message_id"]
        thread_of[mid] = thread_key(o.message)
        accepted[mid] = accepted.get(mid, 0) + (o.kind in ("handled", "queued"))
    # None accepted is fine (all duplicates: it was handled before this replay); two is not.
    found += [
        f"{mid}: accepted {n} times (expected at most once)"
        for mid, n in accepted.items()
        if n > 1 and mid not in failed
    ]
    for info in threads:
        processed = info["state"].get("processed", [])
        twice = sorted({mid for mid in processed if processed.count(mid) > 1})
        found += [f"{info['thread']}: {mid} processed more than once" for mid in twice]
        if len(processed) < HISTORY:
            expected = {
                mid for mid, n in accepted.items() if n and thread_of[mid] == info["thread"]
            }
            found += [
                f"{info['thread']}: {mid} was accepted but never processed"
                for mid in sorted(expected - set(processed))
            ]
    order = {info["thread"]: info["state"].get("processed", []) for info in threads}
    for o in outcomes:
        run = [o.message["message_id"], *o.body.get("drained", [])]
        seen = order.get(thread_key(o.message), [])
        if (
            o.kind == "handled"
            and len(run) > 1
            and len(seen) < HISTORY
            and not any(seen[i : i + len(run)] == run for i in range(len(seen)))
        ):
            found.append(
                f"{thread_key(o.message)}: {' '.join(run)} were not processed in "
                f"that order one after the other ({' '.join(seen)})"
            )
    return found


def counts(outcomes: list[Outcome], threads: list[dict[str, Any]]) -> dict[str, int]:
    """Deliveries by outcome; ``queued_then_handled`` counts queued ones found processed."""
    processed = {mid for info in threads for mid in info["state"].get("processed", [])}
    kinds = [o.kind for o in outcomes]
    return {
        "deliveries": len(outcomes),
        "handled": kinds.count("handled"),
        "queued": kinds.count("queued"),
        "queued_then_handled": sum(
            1 for o in outcomes if o.kind == "queued" and o.message["message_id"] in processed
        ),
        "duplicates": kinds.count("duplicate"),
        "errors": kinds.count("error"),
        "redelivered": sum(1 for o in outcomes if o.refused),
    }


def table(headers: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """A plain-text table with columns as wide as their widest cell."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def describe(o: Outcome, drainers: dict[str, str]) -> str:
    """What became of one delivery, in a few words."""
    mid = o.message["message_id"]
    text = f"ERROR HTTP {o.status}: {o.body.get('error', o.body)}"
    if o.kind == "handled":
        extra = o.body.get("drained") or []
        text = f"handled, then the queued {', '.join(extra)}" if extra else "handled"
        text += " in the order they queued" if len(extra) > 1 else ""
    elif o.kind == "queued":
        by = drainers.get(mid)
        text = f"queued, answered in turn by {by}'s delivery" if by else "queued"
    elif o.kind == "duplicate":
        text = "duplicate, dropped"
    if o.refused:
        times = f" ({len(o.refused)} times)" if len(o.refused) > 1 else ""
        text = f"503 ({o.refused[0]}){times}, redelivered: {text}"
    return text


def deliveries_table(outcomes: list[Outcome]) -> str:
    drainers = drained_by(outcomes)
    return table(
        ["step", "message", "user", "thread", "HTTP", "what happened"],
        [
            (
                o.step,
                o.message["message_id"],
                o.message["user"],
                thread_key(o.message),
                o.status,
                describe(o, drainers),
            )
            for o in outcomes
        ],
    )


def threads_table(threads: list[dict[str, Any]]) -> str:
    rows = []
    for info in threads:
        state = info["state"]
        rows.append(
            (
                info["thread"],
                "yes" if info["subscribed"] else "no",
                state.get("turns", 0),
                len(state.get("replies", [])),
                ",".join(state.get("participants", [])),
                " ".join(state.get("processed", [])),
            )
        )
    return table(
        ["thread", "followed", "turns", "replies", "participants", "processing order"], rows
    )


def channels_table(threads: list[dict[str, Any]]) -> str:
    channels = {info["channel"]: info["channel_state"] for info in threads}
    return table(
        ["channel", "messages", "active threads"],
        [
            (c, s.get("messages", 0), ", ".join(s.get("active_threads", [])) or "-")
            for c, s in channels.items()
        ],
    )


def summary(c: dict[str, int]) -> str:
    return (
        f"{c['deliveries']} deliveries: {c['handled']} handled at once, "
        f"{c['queued_then_handled']} queued then handled in order, "
        f"{c['duplicates']} duplicates dropped, {c['errors']} errors."
        + (
            f" {c['redelivered']} answered 503 first, then redelivered."
            if c.get("redelivered")
            else ""
        )
    )


def report(
    outcomes: list[Outcome], threads: list[dict[str, Any]], write: Callable[[str], Any]
) -> list[str]:
    """Write the deliveries, threads and channels tables and the summary; return problems."""
    write(deliveries_table(outcomes))
    write("")
    write(threads_table(threads))
    write("")
    write(channels_table(threads))
    write("")
    write(summary(counts(outcomes, threads)))
    return problems(outcomes, threads)
