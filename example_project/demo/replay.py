"""Replaying a recorded conversation against the webhook, as a platform would.

A conversation file holds JSON lines, one *step* each::

    {"note": "what happens", "concurrent": true, "deliveries": [{...message...}, ...]}

A step's deliveries are sent one after the other. With ``concurrent``, they go all at once,
by up to ``concurrency`` sender threads. Such a burst is several users posting at the same
moment. Or it is a platform redelivering while the first delivery is still being handled.

Every request is signed. A 503 is redelivered after its ``Retry-After``, as a platform
does. That happens at most :data:`MAX_REDELIVERIES` times, each wait at most
:data:`MAX_WAIT` seconds. :class:`HttpSender` posts over real HTTP to a running server.
:class:`InProcessSender` goes through Django's test client in this process. It uses the
same views, middleware and database.

:func:`final_threads` reads what the bot made of it from this project's store. The
example's server shares its database. :mod:`example_project.demo.report` tells the story.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from django.db import connections
from django.urls import reverse

from chatstate import StateAdapter
from example_project.demo.report import Outcome
from example_project.platform_stub.message import (
    InvalidMessage,
    channel_key,
    parse_message,
    thread_key,
)
from example_project.platform_stub.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

SAMPLE = Path(__file__).with_name("sample_conversation.jsonl")
#: How often a delivery answered 503 is sent again, and the longest wait before each.
MAX_REDELIVERIES = 5
MAX_WAIT = 10.0
#: What a sender returns: the HTTP status, the JSON body, and ``Retry-After`` in seconds.
Reply = tuple[int, dict[str, Any], float | None]


@dataclass
class Step:
    note: str
    concurrent: bool
    deliveries: list[dict[str, Any]]


def load_steps(path: Path | str) -> list[Step]:
    """The steps in the JSON-lines file ``path``; ``ValueError`` naming the line at fault.

    Each delivery must be a valid message by the webhook's rules. So a typo in a
    conversation file is reported here, not as a 400 in the middle of a replay.
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
        steps.append(
            Step(str(data.get("note", "")), bool(data.get("concurrent")), data["deliveries"])
        )
    if not steps:
        raise ValueError(f"{path}: no steps")
    return steps


# -- senders ----------------------------------------------------------------------------


def signed_headers(
    body: bytes, secret: str | None = None, now: float | None = None
) -> dict[str, str]:
    """The two headers a platform adds to a request carrying ``body``.

    :mod:`example_project.platform_stub.signing` describes them.
    """
    timestamp = int(time.time() if now is None else now)
    return {SIGNATURE_HEADER: sign(body, timestamp, secret), TIMESTAMP_HEADER: str(timestamp)}


class Sender(Protocol):
    def post(self, message: dict[str, Any]) -> Reply: ...

    def end_thread(self) -> None: ...


def _path(use_async: bool) -> str:
    return reverse("bot:webhook-async" if use_async else "bot:webhook")


def _seconds(header: str | None) -> float | None:
    """A ``Retry-After`` header's delay in seconds; None if absent or an HTTP date."""
    try:
        return max(0.0, float(header)) if header is not None else None
    except ValueError:
        return None


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {"error": raw[:200].decode("utf-8", "replace")}
    return data if isinstance(data, dict) else {"error": repr(data)[:200]}


class HttpSender:
    """Signed requests over real HTTP to the server at ``base_url``, ``http://host:port``."""

    def __init__(
        self,
        base_url: str,
        secret: str | None = None,
        use_async: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.secret = secret
        self.timeout = timeout
        self.webhook_path = _path(use_async)

    def _open(self, request: urllib.request.Request) -> Reply:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, _json(response.read()), None
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read()), _seconds(exc.headers.get("Retry-After"))

    def post(self, message: dict[str, Any]) -> Reply:
        body = json.dumps(message).encode()
        headers = {"Content-Type": "application/json", **signed_headers(body, self.secret)}
        return self._open(
            urllib.request.Request(
                self.base + self.webhook_path, data=body, headers=headers, method="POST"
            )
        )

    def end_thread(self) -> None:
        return None


#: Test-client options: a host the example project allows; a crashing view answers 500.
_CLIENT: dict[str, Any] = {"headers": {"Host": "localhost"}, "raise_request_exception": False}


class InProcessSender:
    """The same signed requests through Django's test client, in this process."""

    def __init__(self, secret: str | None = None, use_async: bool = False) -> None:
        self.secret = secret
        self.use_async = use_async
        self.webhook_path = _path(use_async)

    def post(self, message: dict[str, Any]) -> Reply:
        from asgiref.sync import async_to_sync
        from django.test import AsyncClient, Client

        body = json.dumps(message).encode()
        kwargs: dict[str, Any] = {
            "content_type": "application/json",
            "headers": signed_headers(body, self.secret),
        }
        if self.use_async:

            async def post() -> Any:
                client = AsyncClient(**_CLIENT)
                return await client.post(self.webhook_path, body, **kwargs)

            response = async_to_sync(post)()
        else:
            response = Client(**_CLIENT).post(self.webhook_path, body, **kwargs)
        return (
            response.status_code,
            _json(response.content),
            _seconds(response.headers.get("Retry-After")),
        )

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
        """Count ``n`` more done and redraw; safe from several sender threads."""
        with self._lock:
            self.done += n
            if not self.enabled:
                return
            filled = 30 * self.done // max(self.total, 1)
            self.stream.write(
                f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}"
            )
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * (len(self.label) + 45) + "\r")
            self.stream.flush()


def replay(
    steps: list[Step], sender: Sender, concurrency: int = 4, progress: Progress | None = None
) -> list[Outcome]:
    """Send every delivery of ``steps`` in order, bursts concurrently.

    Return the outcomes in the order of the file."""
    outcomes: list[Outcome] = []

    def send(step: int, message: dict[str, Any]) -> Outcome:
        status, body, retry_after = sender.post(message)
        refused: list[str] = []
        while status == 503 and len(refused) < MAX_REDELIVERIES:
            refused.append(str(body.get("error", body)))
            time.sleep(min(MAX_WAIT, 1.0 if retry_after is None else retry_after))
            status, body, retry_after = sender.post(message)
        if progress:
            progress.advance()
        return Outcome(step, message, status, body, refused)

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


def final_threads(steps: list[Step], store: StateAdapter) -> list[dict[str, Any]]:
    """What ``store`` holds for each thread of the conversation, in order of appearance.

    Each has ``thread``, ``subscribed``, ``state``, ``history``, ``waiting``, ``channel``
    and ``channel_state``. ``waiting`` counts its replies still in the outbox."""
    first: dict[str, dict[str, Any]] = {}
    for step in steps:
        for message in step.deliveries:
            first.setdefault(thread_key(message), message)
    return [
        {
            "thread": thread,
            "subscribed": store.is_subscribed(thread),
            "state": store.thread_state(thread),
            "history": store.history(thread),
            "waiting": len(store.outbox(thread)),
            "channel": channel_key(message),
            "channel_state": store.channel_state(channel_key(message)),
        }
        for thread, message in first.items()
    ]


def dispatch(store: StateAdapter) -> dict[str, int]:
    """Deliver the replies waiting in ``store``'s outbox; return the total counts.

    They go through ``CHATSTATE["OUTBOX_SENDER"]``, as a dispatcher beside the server sends
    them. Rounds run until one sends none."""
    totals = {"sent": 0, "retried": 0, "dead": 0}
    while True:
        counts = store.dispatch_outbox()
        totals = {name: totals[name] + counts[name] for name in totals}
        if not counts["sent"]:
            return totals
