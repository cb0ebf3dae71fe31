"""The example bot with a busy thread: bursts answered in arrival order, no reordering, and
failures (the handler's, the commit's) that leave no trace.

Concurrency without timing: the bot's model call (``model.think``, or ``model.athink``
behind the async view) is wrapped by a hook that delivers more messages — through the same
view, nested in the request being handled — while the bot holds the thread. Each test runs
against every adapter of the run and through both views (helpers: ``test_bot_webhook.py``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from chatstate import BackendUnavailable, LockResult
from chatstate.testing.helpers import outlive, run_async
from example_project.bot import handler, views
from example_project.platform_stub import model
from tests.bot import test_bot_webhook as webhook
from tests.bot.test_bot_webhook import (
    CHANNEL,
    DUPLICATE,
    KEY1,
    THREAD,
    Post,
    in_reply_to,
    message,
    post_sync,
    processed,
    replies,
    send_async,
    send_sync,
)

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

        # The message being answered is the context's last item (see model.py).
        if post is post_sync:

            def think(context: list[Any], task: str) -> str:
                for step in plan.pop(context[-1]["message_id"], []):
                    step() if callable(step) else record(step, send_sync(step))
                return model.compose(context, task)

            monkeypatch.setattr(model, "think", think)
        else:

            async def athink(context: list[Any], task: str) -> str:
                for step in plan.pop(context[-1]["message_id"], []):
                    if callable(step):  # sync code, on the test's thread (and transaction)
                        await sync_to_async(step)()
                    else:
                        record(step, await send_async(step))
                return model.compose(context, task)

            monkeypatch.setattr(model, "athink", athink)
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


def assert_no_trace(store: Any) -> None:
    """Nothing of a message in ``store``: state, counters, subscription, history, reply."""
    assert store.thread_state(THREAD) == {}
    assert store.channel_state(CHANNEL) == {}
    assert not store.is_subscribed(THREAD)
    assert (store.history(THREAD), store.outbox()) == ([], [])


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
    assert (status, body["status"]) == (200, "handled")
    assert body["handled"] == ["m1", "m2", "m3", "m4", "m5"]
    assert body["outbox"] == [e.key for e in bot.outbox()]
    assert in_reply_to(bot) == processed(bot) == ["m1", "m2", "m3", "m4", "m5"]
    assert bot.thread_state(THREAD) == {"turns": 5}
    assert replies(bot)[-1][1] == "Noted, erin: 5 people in the last 5 messages here."
    assert bot.channel_state(CHANNEL) == {"messages": 5, "active_threads": [THREAD]}
    assert bot.lock(THREAD, "probe") is LockResult.ACQUIRED  # the last drain step released
    bot.release_lock(THREAD, "probe")
    for mid in ("m1", "m5"):  # the platform's later redeliveries are duplicates now
        assert post(message(mid)) == (200, DUPLICATE)


def test_the_thread_is_free_after_a_drain(
    bot: Any, post: Post, meanwhile: Callable[[Plan], list[Answer]]
) -> None:
    """The next message after a burst takes the thread itself and answers at once."""
    meanwhile({"m1": [message("m2")]})
    assert post(message("m1", "@bot hi"))[1]["handled"] == ["m1", "m2"]
    status, body = post(message("m3", user="bob"))
    assert (status, body["status"], body["handled"]) == (200, "handled", ["m3"])
    assert in_reply_to(bot) == processed(bot) == ["m1", "m2", "m3"]


# -- failures ----------------------------------------------------------------------------


def test_failing_handler_withdraws_the_claim(
    bot: Any, post: Post, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot raising mid-message (a bug, a dead model API) is a 500 that leaves no trace,
    so the platform's redelivery is handled."""

    def broken(*args: Any) -> Any:
        raise RuntimeError("model unavailable")

    with monkeypatch.context() as patch:
        patch.setattr(model, "compose", broken)  # after everything else is staged
        with pytest.raises(RuntimeError, match="model unavailable"):
            post(message("m1", "@bot hi"))  # the test client re-raises what would be a 500
    assert_no_trace(bot)
    assert bot.snapshot().locks == {}
    assert post(message("m1", "@bot hi"))[1]["status"] == "handled"
    assert (processed(bot), in_reply_to(bot)) == (["m1"], ["m1"])


def test_a_queued_message_that_fails_stays_first_in_line(
    bot: Any, post: Post, meanwhile: Callable[[Plan], list[Answer]]
) -> None:
    """Answering m3 fails: m1 and m2 are written, m3 stays queued (its redelivery is a
    duplicate: it is stored). The next delivery, m5, finds m3 and m4 waiting: it is queued
    behind them, and its drain answers them, then m5 — in arrival order."""
    meanwhile({"m1": [message("m2"), message("m3"), message("m4")], "m3": [model_down]})
    with pytest.raises(RuntimeError, match="model unavailable"):
        post(message("m1", "@bot hi"))
    assert in_reply_to(bot) == processed(bot) == ["m1", "m2"]
    assert bot.channel_state(CHANNEL)["messages"] == 2
    queued = bot.snapshot().pending_locks[THREAD]
    assert [e["metadata"]["message_id"] for e in queued] == ["m3", "m4"]
    assert THREAD not in bot.snapshot().locks  # released, the queue kept
    assert post(message("m3"))[1]["status"] == "duplicate"
    status, body = post(message("m5"))
    assert (status, body["status"], body["handled"]) == (200, "handled", ["m3", "m4", "m5"])
    assert in_reply_to(bot) == processed(bot) == ["m1", "m2", "m3", "m4", "m5"]
    assert bot.channel_state(CHANNEL)["messages"] == 5


def test_delivery_after_an_expired_lease_drains_what_waited(bot: Any, post: Post) -> None:
    """A worker died holding the thread: once its lease expires, the next delivery takes
    the thread behind the messages that waited, and answers them, then its own, in order."""
    post(message("m1", "@bot hi"))
    lease = 1.0  # outlives two deliveries (an async one on the cluster builds its client)
    bot.lock(THREAD, "dead-worker", ttl=lease)
    assert post(message("m2"))[1]["status"] == "queued"
    assert post(message("m3"))[1]["status"] == "queued"
    outlive(lease)
    status, body = post(message("m4"))
    assert (status, body["status"], body["handled"]) == (200, "handled", ["m2", "m3", "m4"])
    assert in_reply_to(bot) == processed(bot) == ["m1", "m2", "m3", "m4"]


def test_a_full_queue_left_by_a_dead_holder_is_drained_then_a_503(
    bot: Any, post: Post, send: Callable[[Any], Any], make_store: Any, monkeypatch: Any
) -> None:
    """A delivery that finds the queue a dead holder left full is refused (a 503), but holds
    the thread meanwhile: it answers what waited before saying so, so the thread never stays
    stuck behind a full queue. Its redelivery is then handled."""
    with override_settings(CHATSTATE={"MAX_PENDING": 2}):
        small = make_store()
    monkeypatch.setattr(views, "get_adapter", lambda: small)
    # (outlives two deliveries: 1.0 s did not for the async ORM path under tox's load)
    lease = 3.0
    small.lock(THREAD, "dead-worker", "queue", ttl=lease)
    assert [post(message(mid))[0] for mid in ("m1", "m2")] == [202, 202]
    outlive(lease)
    assert_retry_later(send(message("m3")), "message m3 finds the thread's queue full")
    assert processed(small) == ["m1", "m2"]
    assert small.snapshot().locks == {} and small.snapshot().pending_locks == {}
    status, body = post(message("m3"))
    assert (status, body["status"], body["handled"]) == (200, "handled", ["m3"])
    assert processed(small) == ["m1", "m2", "m3"]


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


# -- a failed commit -------------------------------------------------------------------------

#: The cycle's lease in the failed-commit tests: a claim left in progress ends with it.
LEASE = 1.0


def fail_next_commit(store: Any, monkeypatch: pytest.MonkeyPatch, *, ran: bool) -> None:
    """Make ``store``'s next commit raise ``BackendUnavailable``: before it reaches the
    store (the connection died: nothing written), or with ``ran`` after the store ran it (its
    reply was lost). A commit is ``_do_cycle_commit``, or a drain's step (``_do_cycle_drain``: the
    handler drains, so its last step writes and releases). A fault at the backend's hooks, on
    the real store; connections actually cut are ``tests/faults/test_lost_replies.py``'s."""
    cls, armed = type(store), [True]

    def fire(self: Any) -> None:
        if armed and self is store:
            armed.clear()
            raise BackendUnavailable("chatstate's store 'default' is unavailable (injected)")

    def failing(hook: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(hook)  # keeps the hook's operation for the async driver
        def step(self: Any, *args: Any) -> Any:
            if not ran:
                fire(self)
            handover = hook(self, *args)
            fire(self)
            return handover

        return step

    def afailing(hook: Callable[..., Any]) -> Callable[..., Any]:
        async def step(self: Any, *args: Any) -> Any:
            if not ran:
                fire(self)
            handover = await hook(self, *args)
            fire(self)
            return handover

        return step

    for step in ("commit", "drain"):
        name, aname = f"_do_cycle_{step}", f"_do_acycle_{step}"
        monkeypatch.setattr(cls, name, failing(getattr(cls, name)))
        monkeypatch.setattr(cls, aname, afailing(getattr(cls, aname)))


def redeliver(send: Callable[[Any], Any], data: dict[str, Any]) -> Any:
    """Deliver ``data`` until the answer is not a 503, as a platform does (at most 10 s)."""
    deadline = time.monotonic() + 10
    while (response := send(data)).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.1)
    return response


@pytest.mark.parametrize("fault", ["lease_lost", "unavailable", "reply_lost"])
def test_a_failed_commit_leaves_no_trace_and_the_redelivery_counts_once(
    bot: Any,
    send: Callable[[Any], Any],
    meanwhile: Callable[[Plan], list[Answer]],
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    """m1 ("@bot hi") stages a state, a channel counter, a subscription, two history items
    and a reply; its commit fails: another worker took the thread while the model thought
    (``LeaseLost``), or the store became unavailable before the commit reached it. Nothing
    of m1 is written, and its redelivery is handled once. When the commit ran but its reply
    was lost (``reply_lost``), m1 is written once and the redelivery is a duplicate."""
    monkeypatch.setitem(handler.CYCLE, "ttl", LEASE)  # a claim left in progress ends with it

    def steal() -> None:
        bot.force_release_lock(THREAD)
        assert bot.lock(THREAD, "thief") is LockResult.ACQUIRED

    if fault == "lease_lost":
        meanwhile({"m1": [steal]})
        error, retry_after = "the bot lost the thread to another delivery; retry later", "1"
    else:
        fail_next_commit(bot, monkeypatch, ran=fault == "reply_lost")
        error, retry_after = "the bot's state store is unavailable; retry later", "10"
    response = send(message("m1", "@bot hi"))
    assert response.status_code == 503 and response["Retry-After"] == retry_after
    assert response.json() == {"error": error, "field": None}
    if fault == "reply_lost":
        assert_counted_once(bot)
        assert send(message("m1", "@bot hi")).json() == DUPLICATE
    else:
        assert_no_trace(bot)
        if fault == "lease_lost":
            assert bot.snapshot().locks[THREAD]["owner"] == "thief"
            bot.force_release_lock(THREAD)  # the thief is done
        again = redeliver(send, message("m1", "@bot hi"))
        assert (again.status_code, again.json()["handled"]) == (200, ["m1"])
    assert_counted_once(bot)
    assert send(message("m1", "@bot hi")).json() == DUPLICATE
    assert_counted_once(bot)


def assert_counted_once(store: Any) -> None:
    """m1 ("@bot hi") is in ``store`` once: each of its effects, and nothing else."""
    assert store.thread_state(THREAD) == {"turns": 1}
    assert store.channel_state(CHANNEL) == {"messages": 1, "active_threads": [THREAD]}
    assert store.is_subscribed(THREAD)
    assert [
        (i["role"], i.get("message_id", i.get("in_reply_to"))) for i in store.history(THREAD)
    ] == [
        ("user", "m1"),
        ("bot", "m1"),
    ]
    assert [(e.key, e.payload["in_reply_to"]) for e in store.outbox()] == [(KEY1, "m1")]
