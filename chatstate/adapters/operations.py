"""Backend hooks written once, run sync or async: operations as generators of requests.

Some drivers have both a blocking and an asyncio client, like Redis and psycopg. A backend
on one may write a hook as a generator. The generator yields each request it needs sent, and
receives its reply. It holds the operation's logic, free of I/O. :func:`operation` turns it
into the sync hook, run by the adapter's :meth:`_drive`. The adapter's async twins run the
same generator on the asyncio client, through :meth:`_adrive`. So no operation is written
twice."""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

#: An operation: yields requests (whatever its backend's driver understands), receives each
#: reply, returns the hook's result.
Op = Generator[Any, Any, T]

#: The kinds of a SQL request ``(kind, sql, params)``: its reply is the first row it returns
#: (``ROW``) or the number of rows it touched (``COUNT``).
ROW, COUNT = "row", "count"


class Driven(Protocol):
    """An adapter that runs operations: :meth:`_drive` on its blocking client."""

    def _drive(self, op: Op[T]) -> T: ...


D = TypeVar("D", bound=Driven)


def operation(gen: Callable[Concatenate[D, P], Op[T]]) -> Callable[Concatenate[D, P], T]:
    """The sync hook running the operation ``gen`` through ``self._drive``.

    The generator stays reachable as the hook's ``operation`` attribute, for the async
    driver."""

    @functools.wraps(gen)
    def hook(self: D, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._drive(gen(self, *args, **kwargs))

    hook.operation = gen  # type: ignore[attr-defined]
    return hook


def operation_of(hook: Callable[..., Any]) -> Callable[..., Op[Any]] | None:
    """The generator behind a hook made by :func:`operation`, bound or not; else None."""
    return getattr(hook, "operation", None)
