"""How live a namespace is.

``StateAdapter.activity`` reports it. A replace restore checks it before it overwrites the
namespace; that is ``chatstate_restore`` without ``--merge``.

A namespace is **live** when a worker may be using it. That is, a lock is held with its
lease running. Or a claim is in progress: a message cycle handles a message and its lease
runs. Or something happened within the last ``quiet_for`` seconds: a dedupe key claimed, a
lock taken, a state written. All of this is on the backend's clock. Replacing a live
namespace rolls back what its workers did since the snapshot. It also takes their leases
from under them. Pure Python; no Django import."""

from __future__ import annotations

from typing import Any

#: The quiet time a replace restore asks for by default (``--quiet-for``), in seconds.
DEFAULT_QUIET_FOR = 60.0


def activity_report(
    locks_held: int, claims_in_progress: int, last_activity_age: float | None, quiet_for: float
) -> dict[str, Any]:
    """The dict ``StateAdapter.activity`` returns: the three facts, ``quiet_for`` and ``live``.

    ``live`` means any lock held, any claim in progress, or an activity younger than
    ``quiet_for`` seconds."""
    recent = last_activity_age is not None and last_activity_age < quiet_for
    return {
        "locks_held": locks_held,
        "claims_in_progress": claims_in_progress,
        "last_activity_age": last_activity_age,
        "quiet_for": quiet_for,
        "live": bool(locks_held or claims_in_progress or recent),
    }


def describe(namespace: str, activity: dict[str, Any]) -> str:
    """A sentence for people, such as ``namespace 'default' is live: 3 locks held``.

    It goes on with the claims in progress and the last activity's age. A quiet namespace
    reads ``is quiet: …``."""
    state = "live" if activity["live"] else "quiet"
    held, claims = activity["locks_held"], activity["claims_in_progress"]
    age = activity["last_activity_age"]
    last = "no activity recorded" if age is None else f"last activity {_duration(age)} ago"
    return (
        f"namespace {namespace!r} is {state}: {held} lock{'s' * (held != 1)} held, "
        f"{claims} claim{'s' * (claims != 1)} in progress, {last}"
    )


def _duration(seconds: float) -> str:
    """``4 s``, ``12 min``, ``3 h``, ``2 d``: a short, rounded down duration."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


class NamespaceLive(RuntimeError):
    """A replace restore refused: the namespace is live; ``activity`` is what was found.

    The module's docstring says what live means."""

    def __init__(self, namespace: str, activity: dict[str, Any]) -> None:
        self.namespace = namespace
        self.activity = activity
        super().__init__(f"{describe(namespace, activity)}; stop the workers or pass --force")
