"""``get_adapter``: the cached process-wide adapter, fresh adapters by path, database alias."""

from __future__ import annotations

import pytest
from django.test import override_settings

from chatstate import StateAdapter, get_adapter
from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.adapters.memory import MemoryStateAdapter

MEMORY = "chatstate.adapters.memory.MemoryStateAdapter"
DATABASE = "chatstate.adapters.database.DatabaseStateAdapter"


def test_get_adapter_is_cached() -> None:
    first = get_adapter()
    assert isinstance(first, StateAdapter)
    assert get_adapter() is first


def test_the_cache_is_reset_when_the_setting_changes() -> None:
    default = get_adapter()
    with override_settings(
        CHATSTATE={"ADAPTER": MEMORY, "NAMESPACE": "bot-2", "DEDUPE_LIMIT": 7, "LOCK_TTL": 9}
    ):
        inside = get_adapter()
        assert isinstance(inside, MemoryStateAdapter)
        assert (inside.namespace, inside.dedupe_limit, inside.lock_ttl) == ("bot-2", 7, 9)
        assert get_adapter() is inside
    after = get_adapter()
    assert after is not inside and after is not default
    assert isinstance(after, DatabaseStateAdapter) and after.namespace == "default"


def test_options_are_passed_to_the_adapter() -> None:
    with override_settings(CHATSTATE={"ADAPTER": DATABASE, "OPTIONS": {"namespace": "opt"}}):
        assert get_adapter().namespace == "opt"


def test_a_path_builds_a_fresh_adapter_each_call() -> None:
    a = get_adapter(MEMORY, namespace="x")
    b = get_adapter(MEMORY, namespace="x")
    assert isinstance(a, MemoryStateAdapter) and a is not b and a is not get_adapter()
    assert a.namespace == "x"
    a.subscribe("t")
    assert not b.is_subscribed("t")
    assert get_adapter(MEMORY).namespace == "default"


def test_a_bad_path_raises() -> None:
    with pytest.raises(ImportError):
        get_adapter("chatstate.adapters.nope.Nope")
    with pytest.raises(TypeError):
        get_adapter("chatstate.conf.chatstate_settings")


def test_database_adapter_using_and_the_database_setting() -> None:
    assert DatabaseStateAdapter().using == "default"
    assert DatabaseStateAdapter(using="default").using == "default"
    with pytest.raises(ValueError, match="nope"):
        DatabaseStateAdapter(using="nope")
    with override_settings(CHATSTATE={"DATABASE": "nope"}):
        with pytest.raises(ValueError, match="nope"):
            DatabaseStateAdapter()
        with pytest.raises(ValueError, match="nope"):
            get_adapter()
        assert DatabaseStateAdapter(using="default").using == "default"  # using= wins
    with override_settings(CHATSTATE={"DATABASE": "default"}):
        assert get_adapter().using == "default"  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_the_settings_adapter_works() -> None:
    adapter = get_adapter()
    adapter.subscribe("t")
    assert adapter.is_subscribed("t")
