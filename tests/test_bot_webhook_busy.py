"""The example bot with a busy thread: bursts answered in arrival order, no reordering.

Concurrency without timing: the bot's model call (``handler.think``, or ``handler.athink``
behind the async view) is replaced by a hook that delivers more messages — through the same
view, nested in the request being handled — while the bot holds the thread. Each test runs
against every adapter of the run and through both views (helpers: ``test_bot_webhook.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from chatstate import LockResult
from example_project.bot import handler, views
from tests import test_bot_webhook as webhook
from tests.conformance.helpers import outlive, run_async
from tests.test_bot_webhook import THREAD, Post, message, post_sync, send_async, send_sync

# The fixtures of test_bot_webhook.py: the settings (autouse), ``bot`` and ``post``.
bot_settings, bot, post = webhook.bot_settings, webhook.bot, webhook.post

# Sync steps (``bot.lock``, the hooks' deliveries) meet the async view's writes on the same
# rows: the PostgreSQL async twins run on connections of their own, which would wait forever
# on rows the test's rolled-back transaction holds. So each test commits, and is flushed.
pytestmark = pytest.mark.django_db(transaction=True)

#: What a delivery made while the bot was busy got: (message id, HTTP status, the answer's
#: ``status`` or ``error``, its ``Retry-After`` header or None).
Answer = tuple[str, int, str, str | None]
#: While the bot answers message ``id``: deliver these messages, or call these functions.
Plan = dict[str, list[dict[str, Any] | Callable[[], None]]]


@pytest.fixture
def meanwhile(post: Post, monkeypatch: pytest.MonkeyPatch) -> Callable[[Plan], list[Answer]]:
    """``meanwhile(plan)`` installs the hook; returns the list the answers are added to."""

    def install(plan: Plan) -> list[Answer]:
        answers: list[Answer] = []

        def record(sent: dict[str, Any], response: Any) -> None:
            data = response.json()
            answers.append(
                (
                    sent["message_id"],
                    response.status_code,
                    data.get("status") or data["error"],
                    response.get("Retry-After"),
                )
            )

        if post is post_sync:

            def think(message: Any, reply: str | None) -> None:
                for step in plan.pop(message["message_id"], []):
                    step() if callable(step) else record(step, send_sync(step))

            monkeypatch.setattr(handler, "think", think)
        else:

            async def athink(message: Any, reply: str | None) -> None:
                for step in plan.pop(message["message_id"], []):
                    if callable(step):  # sync code, on the test's thread (and transaction)
                        await sync_to_async(step)()
                    else:
                        record(step, await send_async(step))

            monkeypatch.setattr(handler, "athink", athink)
        return answers

    return install


@pytest.fixture
def send(post: Post) -> Callable[[Any], Any]:
    """POST a message to the view ``post`` uses; the response itself (for its headers)."""
    return send_sync if post is post_sync else lambda data: run_async(send_async, data)


def assert_retry_later(response: Any, error: str) -> None:
    assert response.status_code == 503
    assert response["Retry-After"] == str(views.RETRY_AFTER) == "1"
    assert response.json() == {"error": error, "field": None}


def model_down() -> None:
    raise RuntimeError("model unavailable")


def in_reply_to(replies: list[dict[str, str]]) -> list[str]:
    return [r["in_reply_to"] for r in replies]


# -- bursts ------------------------------------------------------------------------------


def test_burst_into_a_busy_thread_is_answered_in_arrival_order(
    bot: Any, post: Post, meanwhile: Callable[[Plan], list[Answer]]
) -> None:
    """While m1 is answered, m2–m4 queue (a redelivered queued m3 is a duplicate, a
    redelivered m1 a 503: it may still fail); m5 arrives while m2 is answered, after the
    queue was handed out: it queues too, and is answered last. Nothing overtakes."""
    answers = meanwhile(
        {
            "m1": [
                message("m2", user="bob"),
                message("m3", user="carol"),
                message("m3", user="carol"),
                message("m1", "@bot watch this"),
                message("m4", user="dave"),
            ],
            "m2": [message("m5", user="erin"), message("m2", user="bob")],
        }
    )
    status, body = post(message("m1", "@bot watch this"))
    assert answers == [
        ("m2", 202, "queued", None),
        ("m3", 202, "queued", None),
        ("m3", 200, "duplicate", None),
        ("m1", 503, "message m1 is being handled now", "1"),
        ("m4", 202, "queued", None),
        ("m5", 202, "queued", None),
        ("m2", 200, "duplicate", None),  # queued, so stored: not a 503
    ]
    assert (status, body["status"], body["drained"]) == (200, "handled", ["m2", "m3", "m4", "m5"])
    assert in_reply_to(body["replies"]) == ["m1", "m2", "m3", "m4", "m5"]
    state = bot.thread_state(THREAD)
    assert state["processed"] == ["m1", "m2", "m3", "m4", "m5"]
    assert in_reply_to(state["replies"]) == ["m1", "m2", "m3", "m4", "m5"]
    assert state["turns"] == 5
    assert state["participants"] == ["alice", "bob", "carol", "dave", "erin"]
    assert "message 5 in this thread, 5 people" in body["replies"][-1]["text"]
    assert bot.channel_state("slack:C1") == {"messages": 5, "active_threads": [THREAD]}
    assert bot.lock(THREAD, "probe") is LockResult.ACQUIRED  # the last drain step released
    bot.release_lock(THREAD, "probe")
    for mid in ("m1", "m5"):  # the platform's later redeliveries are duplicates now
        assert post(message(mid))[:2] == (
            200,
            {"status": "duplicate", "thread": THREAD, "replies": [], "drained": []},
        )


def test_the_thread_is_free_after_a_drain(
    bot: Any, post: Post, meanwhile: Callable[[Plan], list[Answer]]
) -> None:
    """The next message after a burst takes the thread itself and answers at once."""
    meanwhile({"m1": [message("m2")]})
    assert post(message("m1", "@bot hi"))[1]["drained"] == ["m2"]
    status, body = post(message("m3", user="bob"))
    assert (status, body["status"], body["drained"]) == (200, "handled", [])
    assert in_reply_to(body["replies"]) == ["m3"]
    assert bot.thread_state(THREAD)["processed"] == ["m1", "m2", "m3"]


# -- failures ----------------------------------------------------------------------------


def test_failing_handler_withdraws_the_claim(
    bot: Any, post: Post, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot raising mid-message (a bug, a dead model API) is a 500 that leaves no trace,
    so the platform's redelivery is handled."""

    def broken(*args: Any) -> Any:
        raise RuntimeError("model unavailable")

    with monkeypatch.context() as patch:
        patch.setattr(handler, "respond", broken)
        with pytest.raises(RuntimeError, match="model unavailable"):
            post(message("m1", "@bot hi"))  # the test client re-raises what would be a 500
    assert bot.snapshot().thread_state == {} and bot.snapshot().locks == {}
    assert post(message("m1", "@bot hi"))[1]["status"] == "handled"


def test_a_queued_message_that_fails_stays_first_in_line(
    bot: Any, post: Post, meanwhile: Callable[[Plan], list[Answer]]
) -> None:
    """Answering m3 fails: m1 and m2 are written, m3 stays queued (its redelivery is a
    duplicate: it is stored) and the next delivery to the thread answers it after its own."""
    meanwhile({"m1": [message("m2"), message("m3"), message("m4")], "m3": [model_down]})
    with pytest.raises(RuntimeError, match="model unavailable"):
        post(message("m1", "@bot hi"))
    assert bot.thread_state(THREAD)["processed"] == ["m1", "m2"]
    assert bot.channel_state("slack:C1")["messages"] == 2
    queued = bot.snapshot().pending_locks[THREAD]
    assert [e["metadata"]["message_id"] for e in queued] == ["m3", "m4"]
    assert THREAD not in bot.snapshot().locks  # released, the queue kept
    assert post(message("m3"))[1]["status"] == "duplicate"
    status, body = post(message("m5"))
    assert (status, body["status"], body["drained"]) == (200, "handled", ["m3", "m4"])
    assert bot.thread_state(THREAD)["processed"] == ["m1", "m2", "m5", "m3", "m4"]
    assert bot.channel_state("slack:C1")["messages"] == 5


def test_delivery_after_an_expired_lease_drains_what_waited(bot: Any, post: Post) -> None:
    """A worker died holding the thread: once its lease expires, the next delivery takes
    the thread, answers, then the messages that waited behind the dead one, in order."""
    post(message("m1", "@bot hi"))
    lease = 1.0  # outlives two deliveries (an async one on the cluster builds its client)
    bot.lock(THREAD, "dead-worker", ttl=lease)
    assert post(message("m2"))[1]["status"] == "queued"
    assert post(message("m3"))[1]["status"] == "queued"
    outlive(lease)
    status, body = post(message("m4"))
    assert (status, body["status"], body["drained"]) == (200, "handled", ["m2", "m3"])
    assert in_reply_to(body["replies"]) == ["m4", "m2", "m3"]
    assert bot.thread_state(THREAD)["processed"] == ["m1", "m4", "m2", "m3"]


def test_a_lost_lease_is_a_503_and_writes_nothing(
    bot: Any, send: Callable[[Any], Any], meanwhile: Callable[[Plan], list[Answer]]
) -> None:
    """Another worker took the thread while the bot was thinking: its commit raises
    ``LeaseLost``; the platform is asked to deliver again, and nothing of m1 is written."""

    def steal() -> None:
        bot.force_release_lock(THREAD)
        assert bot.lock(THREAD, "thief") is LockResult.ACQUIRED

    meanwhile({"m1": [steal]})
    assert_retry_later(
        send(message("m1", "@bot hi")), "the bot lost the thread to another delivery; retry later"
    )
    assert bot.thread_state(THREAD) == {}
    assert bot.snapshot().locks[THREAD]["owner"] == "thief"


def test_a_full_queue_is_a_503(
    bot: Any,
    post: Post,
    send: Callable[[Any], Any],
    make_store: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A queue at ``MAX_PENDING`` refuses the newcomer (``overflow="drop_newest"``), so no
    queued message is dropped; the platform is asked to deliver it again."""
    with override_settings(CHATSTATE={"MAX_PENDING": 2}):
        small = make_store()
    monkeypatch.setattr(views, "get_adapter", lambda: small)
    small.lock(THREAD, "holder", "queue")
    assert [post(message(mid))[0] for mid in ("m1", "m2")] == [202, 202]
    assert_retry_later(send(message("m3")), "message m3 finds the thread's queue full")
    queued = small.release_lock(THREAD, "holder")
    assert [e.metadata["message_id"] for e in queued] == ["m1", "m2"]
