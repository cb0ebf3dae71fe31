"""The Python blocks of ``README.md`` and ``docs/api.rst`` run as written (read from the files,
not copied here): the settings pass Django's system checks, the webhook handler keeps its
promise — every message acted on once, none lost, whatever fails — and the API tour holds.

Each block is recognized by what it defines; a block this module does not know fails
:func:`test_every_readme_block_is_run`, so a new snippet cannot ship untested.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.test import RequestFactory, override_settings

from chatstate import conf, registry
from tests.conftest import STORE_FACTORIES, next_namespace

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
API = (ROOT / "docs" / "api.rst").read_text(encoding="utf-8")


def markdown_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


def rst_blocks(text: str) -> list[str]:
    blocks = re.findall(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", text, re.M)
    return [re.sub(r"^   ", "", block, flags=re.M) for block in blocks]


def readme_block(marker: str) -> str:
    (block,) = [block for block in markdown_blocks(README) if marker in block]
    return block


def run_block(source: str, name: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": name}
    exec(compile(source, name, "exec"), namespace)
    return namespace


#: The README's blocks, each by a line only it has, and the test that runs it.
KINDS = {
    'INSTALLED_APPS = [..., "chatstate"]': "test_the_settings_block_passes_the_checks",
    '"chatstate": {"BACKEND": "django_redis.cache.RedisCache"': "test_the_redis_settings_pass",
    "def webhook(request):": "tests of the webhook handler, below",
}


def test_every_readme_block_is_run() -> None:
    blocks = markdown_blocks(README)
    assert len(blocks) == len(KINDS)
    for block in blocks:
        assert [kind for kind in KINDS if kind in block], block


# -- settings ----------------------------------------------------------------------------


@pytest.mark.django_db  # (the checks may read the database: chatstate's tables)
def test_the_settings_block_passes_the_checks() -> None:
    block = run_block(readme_block('INSTALLED_APPS = [..., "chatstate"]'), "settings")
    assert "chatstate" in block["INSTALLED_APPS"]
    assert set(block["CHATSTATE"]) <= set(conf.DEFAULTS)
    with override_settings(CHATSTATE=block["CHATSTATE"]):
        assert checks.run_checks(include_deployment_checks=False) == []


@pytest.mark.django_db
def test_the_redis_settings_pass() -> None:
    """Issue 22: the snippet had no ``default`` cache (``caches.E001``)."""
    block = run_block(readme_block('"chatstate": {"BACKEND"'), "settings")
    with override_settings(CACHES=block["CACHES"], CHATSTATE=block["CHATSTATE"]):
        errors = checks.run_checks(include_deployment_checks=False)
        assert [error.id for error in errors] == []
        registry.reset()
        try:
            store = registry.get_adapter()
            assert (type(store).__name__, store.alias) == ("RedisStateAdapter", "chatstate")
        finally:
            registry.reset()


# -- the webhook handler -----------------------------------------------------------------


class Crash(Exception):
    """What a failing bot raises while handling a message."""


#: ``CHATSTATE`` for each kind of store of this run (tests/conftest.py) that settings build.
ADAPTERS = {
    "memory": {"ADAPTER": "chatstate.adapters.memory.MemoryStateAdapter"},
    "database": {"ADAPTER": "chatstate.adapters.database.DatabaseStateAdapter"},
    "database_orm": {
        "ADAPTER": "chatstate.adapters.database.DatabaseStateAdapter",
        "OPTIONS": {"fast_sql": False},
    },
    "redis": {
        "ADAPTER": "chatstate.adapters.redis.RedisStateAdapter",
        "OPTIONS": {"alias": "chatstate"},
    },
}


@pytest.fixture(params=[kind for kind in ADAPTERS if kind in STORE_FACTORIES])
def readme(request: pytest.FixtureRequest, transactional_db: None) -> Iterator[dict[str, Any]]:
    """The README's handler module on each kind of store of this run (``get_adapter()``
    built from ``CHATSTATE``), in a namespace of its own, with ``handled`` recording each
    ``handle`` call's message id (a test may replace ``handle``)."""
    module = run_block(readme_block("def webhook(request):"), "readme_webhook")
    handled: list[str] = []
    original = module["handle"]

    def handle(msg: Any, message: dict[str, Any]) -> None:
        handled.append(message["message_id"])
        original(msg, message)

    module["handle"], module["handled"] = handle, handled
    configured = {**ADAPTERS[request.param], "NAMESPACE": next_namespace()}
    with override_settings(CHATSTATE=configured):
        registry.reset()
        try:
            yield module
        finally:
            clear = getattr(registry.get_adapter(), "clear", None)  # Redis: its keys
            if clear is not None:
                clear()
            registry.reset()


def post(module: dict[str, Any], message_id: str, thread: str = "T1") -> tuple[int, Any]:
    body = {
        "message_id": message_id,
        "thread_id": thread,
        "channel_id": "C1",
        "text": f"text of {message_id}",
    }
    request = RequestFactory().post("/webhook", json.dumps(body), "application/json")
    response = module["webhook"](request)
    return response.status_code, json.loads(response.content)


def queued_ids(thread: str = "T1") -> list[str]:
    pending = registry.get_adapter().snapshot().pending_locks.get(thread, [])
    return [entry["metadata"]["message_id"] for entry in pending]


def test_a_message_is_handled_once(readme: dict[str, Any]) -> None:
    assert post(readme, "m1") == (200, {"status": "acquired"})
    assert post(readme, "m1") == (200, {"status": "duplicate"})
    assert readme["handled"] == ["m1"]
    store = registry.get_adapter()
    assert store.thread_state("T1") == {"turns": 1}
    assert store.channel_state("C1") == {"messages": 1}
    assert [e.payload["text"] for e in store.outbox()] == ["Noted."]


def test_a_crash_while_handling_a_queued_message_loses_nothing(readme: dict[str, Any]) -> None:
    """Issue 22: the README handled ``msg.pending`` after the block, where its entries are
    gone from the store and their claims done: a crash lost them, and their redelivery was a
    duplicate. With ``drain()`` the entry being handled stays queued for the next holder."""
    handle, fail = readme["handle"], {"m2"}

    def bot(msg: Any, message: dict[str, Any]) -> None:
        handle(msg, message)
        if message["message_id"] == "m1":  # while m1 is handled, the platform delivers:
            assert post(readme, "m1")[0] == 503  # m1 again: in progress, ask again later
            assert post(readme, "m2") == (200, {"status": "queued"})
            assert post(readme, "m3") == (200, {"status": "queued"})
        if message["message_id"] in fail:
            fail.discard(message["message_id"])
            raise Crash(message["message_id"])

    readme["handle"] = bot
    with pytest.raises(Crash):
        post(readme, "m1")
    assert readme["handled"] == ["m1", "m2"]
    assert queued_ids() == ["m2", "m3"]  # the one that failed first, then the rest
    assert registry.get_adapter().thread_state("T1") == {"turns": 1}  # m1's step written
    assert post(readme, "m2") == (200, {"status": "duplicate"})  # stored: not again
    # The next message queues behind the entries left, and its cycle, holding the thread,
    # drains them in arrival order, then the message itself.
    assert post(readme, "m4") == (200, {"status": "queued"})
    assert readme["handled"] == ["m1", "m2", "m2", "m3", "m4"]
    assert queued_ids() == []
    store = registry.get_adapter()
    assert store.thread_state("T1") == {"turns": 4}
    assert store.channel_state("C1") == {"messages": 4}  # m2's failed step left no trace
    assert len(store.outbox()) == 4


def test_a_message_after_a_dead_holder_is_handled_behind_its_queue(
    readme: dict[str, Any],
) -> None:
    """A holder died (its lease ran out) with a message queued behind it: the next message
    is ``queued`` behind that entry while its own cycle holds the thread, and the handler's
    ``drain()`` hands out the older entry, then the message itself."""
    store = registry.get_adapter()
    # A lease that outlasts the next post even on a loaded machine, then runs out.
    assert store.lock("T1", "dead-worker", "queue", ttl=1.0) == "acquired"
    assert post(readme, "m5") == (200, {"status": "queued"})
    time.sleep(1.2)  # the dead holder's lease runs out
    assert post(readme, "m6") == (200, {"status": "queued"})
    assert readme["handled"] == ["m5", "m6"]
    assert queued_ids() == [] and store.snapshot().locks == {}
    assert store.thread_state("T1") == {"turns": 2}


# -- docs/api.rst ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_api_tour_runs() -> None:
    blocks = rst_blocks(API)
    assert len(blocks) == 1
    with override_settings(CHATSTATE={"NAMESPACE": next_namespace()}):
        registry.reset()
        try:
            tour = run_block(blocks[0], "api_tour")
        finally:
            registry.reset()
    assert tour["thread"] == "slack:C1:1700000000.1"
