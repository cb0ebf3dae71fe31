"""What a replay did, checked and printed.

Each delivery has an :class:`Outcome`. :func:`problems` checks the promises against what
the store holds afterwards. The rest makes the tables and summary the commands print.

A thread's processing order is its history, ``msg.history``. It lists the user messages in
the order the bot handled them. Each is followed by the bot's reply, if any.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from chatstate import conf
from example_project.platform_stub.message import thread_key


@dataclass
class Outcome:
    """One delivery's result: the HTTP status and the JSON body the webhook answered last.

    ``refused`` holds the errors of the earlier attempts, answered 503 and redelivered."""

    step: int
    message: dict[str, Any]
    status: int
    body: dict[str, Any]
    refused: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """``handled``, ``queued`` or ``duplicate``; ``error`` for any other answer."""
        if self.status in (200, 202) and self.body.get("status") in (
            "handled",
            "queued",
            "duplicate",
        ):
            return str(self.body["status"])
        return "error"

    @property
    def run(self) -> list[str]:
        """The ids of the messages this delivery handled, in order."""
        return list(self.body.get("handled", []))


def processed(info: dict[str, Any]) -> list[str]:
    """The ids of a thread's messages in the order the bot handled them, from its history."""
    return [item["message_id"] for item in info["history"] if item.get("role") == "user"]


def replied(info: dict[str, Any]) -> list[str]:
    """The ids of a thread's messages the bot replied to, in order, from its history."""
    return [item["in_reply_to"] for item in info["history"] if item.get("role") == "bot"]


def handled_by(outcomes: Iterable[Outcome]) -> dict[str, str]:
    """For each message handled by another delivery, the id of that delivery's message."""
    return {
        mid: o.message["message_id"]
        for o in outcomes
        for mid in o.run
        if mid != o.message["message_id"]
    }


def problems(outcomes: list[Outcome], threads: list[dict[str, Any]]) -> list[str]:
    """Every broken promise; ``[]`` when all went as guaranteed.

    These are broken promises:

    - an error answer;
    - a message accepted, handled or queued, more than once;
    - an accepted message never processed, or processed twice;
    - a reply sent twice, or still waiting in the outbox;
    - one delivery's messages not processed in its order, one right after the other.

    A history cut to ``HISTORY_LIMIT`` items is not checked for lost messages."""
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
    # No acceptance is fine: all duplicates, handled before this replay. Two is not.
    found += [
        f"{mid}: accepted {n} times (expected at most once)"
        for mid, n in accepted.items()
        if n > 1 and mid not in failed
    ]
    whole = {info["thread"]: len(info["history"]) < conf.get("HISTORY_LIMIT") for info in threads}
    for info in threads:
        order, replies = processed(info), replied(info)
        twice = sorted({mid for mid in order if order.count(mid) > 1})
        found += [f"{info['thread']}: {mid} processed more than once" for mid in twice]
        twice = sorted({mid for mid in replies if replies.count(mid) > 1})
        found += [f"{info['thread']}: {mid} answered more than once" for mid in twice]
        if info["waiting"]:
            found.append(f"{info['thread']}: {info['waiting']} replies still in the outbox")
        if whole[info["thread"]]:
            expected = {m for m, n in accepted.items() if n and thread_of[m] == info["thread"]}
            found += [
                f"{info['thread']}: {mid} was accepted but never processed"
                for mid in sorted(expected - set(order))
            ]
    order_of = {info["thread"]: processed(info) for info in threads}
    for o in outcomes:
        run, seen = o.run, order_of.get(thread_key(o.message), [])
        if (
            len(run) > 1
            and whole.get(thread_key(o.message))
            and not any(seen[i : i + len(run)] == run for i in range(len(seen)))
        ):
            found.append(
                f"{thread_key(o.message)}: {' '.join(run)} were not processed in "
                f"that order one after the other ({' '.join(seen)})"
            )
    return found


def counts(outcomes: list[Outcome], threads: list[dict[str, Any]]) -> dict[str, int]:
    """Deliveries by outcome; ``queued_then_handled`` counts queued ones found processed."""
    done = {mid for info in threads for mid in processed(info)}
    kinds = [o.kind for o in outcomes]
    return {
        "deliveries": len(outcomes),
        "handled": kinds.count("handled"),
        "queued": kinds.count("queued"),
        "queued_then_handled": sum(
            1 for o in outcomes if o.kind == "queued" and o.message["message_id"] in done
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


def describe(o: Outcome, handlers: dict[str, str]) -> str:
    """What became of one delivery, in a few words."""
    mid = o.message["message_id"]
    text = f"ERROR HTTP {o.status}: {o.body.get('error', o.body)}"
    if o.kind == "handled":
        run = o.run
        before, after = run[: run.index(mid)], run[run.index(mid) + 1 :]
        text = "handled"
        if before:
            text = f"queued behind {', '.join(before)} (left waiting), handled them, then it"
        if after:
            text += f", then the queued {', '.join(after)}"
            text += " in the order they queued" if len(after) > 1 else ""
    elif o.kind == "queued":
        by = handlers.get(mid)
        text = f"queued, handled in turn by {by}'s delivery" if by else "queued"
    elif o.kind == "duplicate":
        text = "duplicate, dropped"
    if o.refused:
        times = f" ({len(o.refused)} times)" if len(o.refused) > 1 else ""
        text = f"503 ({o.refused[0]}){times}, redelivered: {text}"
    return text


def deliveries_table(outcomes: list[Outcome]) -> str:
    handlers = handled_by(outcomes)
    return table(
        ["step", "message", "user", "thread", "HTTP", "what happened"],
        [
            (
                o.step,
                o.message["message_id"],
                o.message["user"],
                thread_key(o.message),
                o.status,
                describe(o, handlers),
            )
            for o in outcomes
        ],
    )


def threads_table(threads: list[dict[str, Any]]) -> str:
    rows = [
        (
            info["thread"],
            "yes" if info["subscribed"] else "no",
            info["state"].get("turns", 0),
            len(replied(info)),
            " ".join(processed(info)),
        )
        for info in threads
    ]
    return table(["thread", "followed", "turns", "replies", "processing order (history)"], rows)


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
