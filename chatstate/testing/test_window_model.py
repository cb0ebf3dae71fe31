"""The dedupe window against a model: a list of keys, the newest ``LIMIT`` kept.

Random runs of marks, claims, and cycles that commit or fail, some with other keys claimed
or refused (their thread busy) while they are open. After every step the window holds
exactly the model's keys, in order, on every adapter: a withdrawn claim, wherever it sat,
costs the window no other key; a refused one keeps its place, and is handled when delivered
again.
"""

from __future__ import annotations

import random
from contextlib import nullcontext
from typing import Any

import pytest

LIMIT = 5


class Failed(Exception):
    pass


class Model:
    """The window a store must hold: keys oldest first, the newest ``LIMIT`` kept. A refused
    key keeps its place but is not a duplicate (nor in a snapshot)."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []
        self.refused: set[tuple[str, str]] = set()

    def held(self) -> list[tuple[str, str]]:
        """The keys that make a message a duplicate (what a snapshot holds), in order."""
        return [key for key in self.keys if key not in self.refused]

    def add(self, key: tuple[str, str]) -> bool:
        if key in self.refused:
            self.refused.discard(key)
            return True
        if key in self.keys:
            return False
        self.keys = [*self.keys, key][-LIMIT:]
        self.refused &= set(self.keys)
        return True


def step(store: Any, model: Model, rng: random.Random, names: list[str]) -> None:
    key = ("s", rng.choice(names))
    roll = rng.random()
    if roll < 0.3:
        store.mark_dedupe(key, LIMIT)
        model.add(key)
    elif roll < 0.6:
        assert store.claim_dedupe(key, LIMIT) is model.add(key), key
    else:
        cycle(store, model, rng, names, key, fails=rng.random() < 0.5)
    assert store.snapshot().dedupe_order == model.held()


def cycle(
    store: Any, model: Model, rng: random.Random, names: list[str], key: Any, fails: bool
) -> None:
    """A cycle of ``key`` that commits or fails, other keys claimed while it is open."""
    new = model.add(key)
    handled = store.handle_message(key, thread_id="t", owner="o", dedupe_limit=LIMIT)
    with pytest.raises(Failed) if fails else nullcontext(), handled as msg:
        assert msg.acquired is new, key
        # Few enough other keys that the open claim stays in the window.
        for _ in range(rng.randint(0, 2) if new else 0):
            other = ("s", rng.choice(names))
            if rng.random() < 0.5:
                assert store.claim_dedupe(other, LIMIT) is model.add(other), other
                continue
            # Delivered while the thread is busy: refused, unless a duplicate.
            fresh = model.add(other)
            with store.handle_message(other, thread_id="t", owner="p", dedupe_limit=LIMIT) as busy:
                assert busy.duplicate is not fresh, other
            if fresh:
                model.refused.add(other)
        if fails:
            raise Failed
    if fails and new:
        model.keys.remove(key)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_window_holds_the_newest_keys_through_withdrawals(store: Any, seed: int) -> None:
    rng = random.Random(seed)
    names = [f"m{i}" for i in range(12)]
    model = Model()
    for _ in range(60):
        step(store, model, rng, names)
