"""How live a namespace is: what ``StateAdapter.activity`` reports and what a replace restore
checks before it overwrites the namespace (``chatstate_restore`` without ``--merge``).

A namespace is **live** when a worker may be using it: a lock is held (its lease runs), a
claim is in progress (a message cycle is handling a message and its lease runs), or
something happened within the last ``quiet_for`` seconds (a dedupe key claimed, a lock
taken, a state written), all on the backend's clock. Replacing a live namespace rolls back
what its workers did since the snapshot was taken and takes their leases from under them.
Pure Python; no Django import.
"""

from __future__ import annotations

from typing import Any

#: The quiet time a replace restore asks for by default (``--quiet-for``), in seconds.
DEFAULT_QUIET_FOR = 60.0


def activity_report(
    locks_held: int, claims_in_progress: int, last_activity_age: float | None, quiet_for: float
) -> dict[str, Any]:
    """The dict ``StateAdapter.activity`` returns: the three facts, ``quiet_for`` and
    ``live`` (any lock held, any claim in progress, or an activity younger than
    ``quiet_for`` seconds)."""
    recent = last_activity_age is not None and last_activity_age < quiet_for
    return {
        "locks_held": locks_held,
        "claims_in_progress": claims_in_progress,
        "last_activity_age": last_activity_age,
        "quiet_for": quiet_for,
        "live": bool(locks_held or claims_in_progress or recent),
    }


def describe(namespace: str, activity: dict[str, Any]) -> str:
    """``namespace 'default' is live: 3 locks held, 2 claims in progress, last activity 4 s
    ago`` (or ``is quiet: …``)."""
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
    """A replace restore refused: the namespace is live (see the module's docstring);
    ``activity`` is what was found."""

    def __init__(self, namespace: str, activity: dict[str, Any]) -> None:
        self.namespace = namespace
        self.activity = activity
        super().__init__(f"{describe(namespace, activity)}; stop the workers or pass --force")
