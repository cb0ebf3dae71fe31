"""Replaying a recorded conversation against the webhook, and reporting what happened.

A conversation file holds JSON lines, one *step* each::

    {"note": "what happens", "concurrent": true, "deliveries": [{...message...}, ...]}

Deliveries of a step are sent one after the other, or — ``concurrent`` — all at once by up
to ``concurrency`` sender threads (a burst, as several users posting at the same moment, or a
platform redelivering while the first delivery is still being handled). Every request is
signed. :class:`HttpSender` posts over real HTTP to a running server; :class:`InProcessSender`
goes through Django's test client in this process (same views, middleware and database).
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import urlencode

from django.db import connections
from django.urls import reverse

from example_project.bot.handler import HISTORY
from example_project.bot.message import InvalidMessage, parse_message, thread_key
from example_project.bot.signing import signed_headers

SAMPLE = Path(__file__).with_name("sample_conversation.jsonl")


@dataclass
class Step:
    note: str
    concurrent: bool
    deliveries: list[dict[str, Any]]


@dataclass
class Outcome:
    """One delivery's result: the HTTP status and the JSON body the webhook answered."""

    step: int
    message: dict[str, Any]
    status: int
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        """``handled``, ``queued``, ``duplicate``, or ``error`` (any other answer)."""
        if self.status in (200, 202) and self.body.get("status") in (
            "handled", "queued", "duplicate"
        ):
            return str(self.body["status"])
        return "error"


def load_steps(path: Path | str) -> list[Step]:
    """The steps in the JSON-lines file ``path``; ``ValueError`` naming the line at fault.

    Each delivery must be a valid message (the webhook's rules), so a typo in a
    conversation file is reported here rather than as a 400 in the middle of a replay.
    """
    steps: list[Step] = []
    text = Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{where}: not JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("deliveries"), list):
            raise ValueError(f"{where}: expected an object with a 'deliveries' list")
        for i, delivery in enumerate(data["deliveries"]):
            try:
                parse_message(json.dumps(delivery).encode())
            except InvalidMessage as exc:
                raise ValueError(f"{where}: deliveries[{i}]: {exc.error}") from None
        steps.append(Step(str(data.get("note", "")), bool(data.get("concurrent")),
                          data["deliveries"]))
    if not steps:
        raise ValueError(f"{path}: no steps")
    return steps


# -- senders ----------------------------------------------------------------------------


class Sender(Protocol):
    def post(self, message: dict[str, Any]) -> tuple[int, dict[str, Any]]: ...

    def thread(self, message: dict[str, Any]) -> tuple[int, dict[str, Any]]: ...

    def end_thread(self) -> None: ...


def _paths(use_async: bool) -> tuple[str, str]:
    return reverse("bot:webhook-async" if use_async else "bot:webhook"), reverse("bot:threads")


def _thread_query(message: dict[str, Any]) -> str:
    return urlencode({k: message[k] for k in ("platform", "channel_id", "thread_id")})


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {"error": raw[:200].decode("utf-8", "replace")}
    return data if isinstance(data, dict) else {"error": repr(data)[:200]}


class HttpSender:
    """Signed requests over real HTTP to the server at ``base_url`` (``http://host:port``)."""

    def __init__(self, base_url: str, secret: str | None = None, use_async: bool = False,
                 timeout: float = 30.0) -> None:
        self.base = base_url.rstrip("/")
        self.secret = secret
        self.timeout = timeout
        self.webhook_path, self.threads_path = _paths(use_async)

    def _open(self, request: urllib.request.Request) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read())

    def post(self, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body = json.dumps(message).encode()
        headers = {"Content-Type": "application/json", **signed_headers(body, self.secret)}
        return self._open(urllib.request.Request(
            self.base + self.webhook_path, data=body, headers=headers, method="POST"
        ))

    def thread(self, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        query = _thread_query(message)
        headers = signed_headers(query.encode(), self.secret)
        return self._open(urllib.request.Request(
            f"{self.base}{self.threads_path}?{query}", headers=headers
        ))

    def end_thread(self) -> None:
        return None


#: Test-client options: a host the example project allows; a crashing view answers 500.
_CLIENT: dict[str, Any] = {"headers": {"Host": "localhost"}, "raise_request_exception": False}


class InProcessSender:
    """The same signed requests through Django's test client, in this process."""

    def __init__(self, secret: str | None = None, use_async: bool = False) -> None:
        self.secret = secret
        self.use_async = use_async
        self.webhook_path, self.threads_path = _paths(use_async)

    def post(self, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        from asgiref.sync import async_to_sync
        from django.test import AsyncClient, Client

        body = json.dumps(message).encode()
        kwargs: dict[str, Any] = {"content_type": "application/json",
                                  "headers": signed_headers(body, self.secret)}
        if self.use_async:

            async def post() -> Any:
                client = AsyncClient(**_CLIENT)
                return await client.post(self.webhook_path, body, **kwargs)

            response = async_to_sync(post)()
        else:
            response = Client(**_CLIENT).post(self.webhook_path, body, **kwargs)
        return response.status_code, _json(response.content)

    def thread(self, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        from django.test import Client

        query = _thread_query(message)
        response = Client(**_CLIENT).get(
            f"{self.threads_path}?{query}", headers=signed_headers(query.encode(), self.secret)
        )
        return response.status_code, _json(response.content)

    def end_thread(self) -> None:
        """A sender thread is done: close the database connections it opened."""
        connections.close_all()


# -- running ----------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on ``stream`` when it is a terminal; silent otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None, label: str = "replay") -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total, self.done, self.label = total, 0, label
        self._lock = threading.Lock()

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more done and redraw (safe from several sender threads)."""
        with self._lock:
            self.done += n
            if not self.enabled:
                return
            filled = 30 * self.done // max(self.total, 1)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] "
                              f"{self.done}/{self.total}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * (len(self.label) + 45) + "\r")
            self.stream.flush()


def replay(steps: list[Step], sender: Sender, concurrency: int = 4,
           progress: Progress | None = None) -> list[Outcome]:
    """Send every delivery of ``steps`` in order (bursts concurrently); return the outcomes,
    in the order of the file."""
    outcomes: list[Outcome] = []

    def send(step: int, message: dict[str, Any]) -> Outcome:
        status, body = sender.post(message)
        if progress:
            progress.advance()
        return Outcome(step, message, status, body)

    def send_in_thread(args: tuple[int, dict[str, Any]]) -> Outcome:
        try:
            return send(*args)
        finally:
            sender.end_thread()

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for number, step in enumerate(steps, 1):
            if step.concurrent:
                outcomes += pool.map(send_in_thread, [(number, m) for m in step.deliveries])
            else:
                outcomes += [send(number, m) for m in step.deliveries]
    if progress:
        progress.close()
    return outcomes


def final_threads(steps: list[Step], sender: Sender) -> list[dict[str, Any]]:
    """What the server knows about each thread of the conversation, in order of appearance."""
    seen: dict[str, dict[str, Any]] = {}
    for step in steps:
        for message in step.deliveries:
            seen.setdefault(thread_key(message), message)
    threads = []
    for message in seen.values():
        status, body = sender.thread(message)
        if status != 200:
            raise RuntimeError(f"GET thread {thread_key(message)}: HTTP {status} {body}")
        threads.append(body)
    return threads


# -- what happened ----------------------------------------------------------------------


def drained_by(outcomes: Iterable[Outcome]) -> dict[str, str]:
    """Queued message id -> id of the delivery that processed it after its own."""
    return {mid: o.message["message_id"] for o in outcomes for mid in o.body.get("drained", [])}


def problems(outcomes: list[Outcome], threads: list[dict[str, Any]]) -> list[str]:
    """Every broken promise: an error answer, a message accepted (handled or queued) more
    than once, an accepted message never processed. ``[]`` when all went as guaranteed."""
    found = [f"step {o.step} {o.message['message_id']}: HTTP {o.status} {o.body}"
             for o in outcomes if o.kind == "error"]
    failed = {o.message["message_id"] for o in outcomes if o.kind == "error"}
    accepted: dict[str, int] = {}
    thread_of: dict[str, str] = {}
    for o in outcomes:
        mid = o.message["message_id"]
        thread_of[mid] = thread_key(o.message)
        accepted[mid] = accepted.get(mid, 0) + (o.kind in ("handled", "queued"))
    # None accepted is fine (all duplicates: it was handled before this replay); two is not.
    found += [f"{mid}: accepted {n} times (expected at most once)"
              for mid, n in accepted.items() if n > 1 and mid not in failed]
    for info in threads:
        processed = info["state"].get("processed", [])
        twice = sorted({mid for mid in processed if processed.count(mid) > 1})
        found += [f"{info['thread']}: {mid} processed more than once" for mid in twice]
        if len(processed) < HISTORY:
            expected = {mid for mid, n in accepted.items()
                        if n and thread_of[mid] == info["thread"]}
            found += [f"{info['thread']}: {mid} was accepted but never processed"
                      for mid in sorted(expected - set(processed))]
    return found


def counts(outcomes: list[Outcome], threads: list[dict[str, Any]]) -> dict[str, int]:
    """Deliveries by outcome; ``queued_then_handled`` counts queued ones found processed."""
    processed = {mid for info in threads for mid in info["state"].get("processed", [])}
    kinds = [o.kind for o in outcomes]
    return {
        "deliveries": len(outcomes),
        "handled": kinds.count("handled"),
        "queued": kinds.count("queued"),
        "queued_then_handled": sum(1 for o in outcomes if o.kind == "queued"
                                   and o.message["message_id"] in processed),
        "duplicates": kinds.count("duplicate"),
        "errors": kinds.count("error"),
    }


def table(headers: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """A plain-text table with columns as wide as their widest cell."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _describe(o: Outcome, drainers: dict[str, str]) -> str:
    mid = o.message["message_id"]
    if o.kind == "handled":
        extra = o.body.get("drained") or []
        text = "handled"
        if extra:
            text += f", then answered the queued {', '.join(extra)}"
        if o.body.get("handed_over"):
            text += f"; handed {', '.join(o.body['handed_over'])} on to a newer holder"
        return text
    if o.kind == "queued":
        by = drainers.get(mid)
        return f"queued, then handled after {by}" if by else "queued (handed on)"
    if o.kind == "duplicate":
        return "duplicate, dropped"
    return f"ERROR HTTP {o.status}: {o.body.get('error', o.body)}"


def deliveries_table(outcomes: list[Outcome]) -> str:
    drainers = drained_by(outcomes)
    return table(
        ["step", "message", "user", "thread", "HTTP", "what happened"],
        [(o.step, o.message["message_id"], o.message["user"], thread_key(o.message),
          o.status, _describe(o, drainers)) for o in outcomes],
    )


def threads_table(threads: list[dict[str, Any]]) -> str:
    rows = []
    for info in threads:
        state = info["state"]
        rows.append((info["thread"], "yes" if info["subscribed"] else "no",
                     state.get("turns", 0), len(state.get("replies", [])),
                     ",".join(state.get("participants", [])),
                     " ".join(state.get("processed", []))))
    return table(["thread", "followed", "turns", "replies", "participants",
                  "processing order"], rows)


def channels_table(threads: list[dict[str, Any]]) -> str:
    channels = {info["channel"]: info["channel_state"] for info in threads}
    return table(["channel", "messages", "active threads"],
                 [(c, s.get("messages", 0), ", ".join(s.get("active_threads", [])) or "-")
                  for c, s in channels.items()])


def summary(c: dict[str, int]) -> str:
    return (f"{c['deliveries']} deliveries: {c['handled']} handled at once, "
            f"{c['queued_then_handled']} queued then handled in order, "
            f"{c['duplicates']} duplicates dropped, {c['errors']} errors.")


def report(outcomes: list[Outcome], threads: list[dict[str, Any]],
           write: Callable[[str], Any]) -> list[str]:
    """Write the deliveries, threads and channels tables and the summary; return problems."""
    write(deliveries_table(outcomes))
    write("")
    write(threads_table(threads))
    write("")
    write(channels_table(threads))
    write("")
    write(summary(counts(outcomes, threads)))
    return problems(outcomes, threads)
