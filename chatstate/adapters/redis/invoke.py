"""How a script is called: as a Redis 7 function (``FCALL``), else by SHA (``EVALSHA``).

A function library is built once per load, so a call does not rebuild the prelude's and the
libraries' functions (``scripts.LuaScript.library``). A server without functions (Redis 6),
or a user whose ACL refuses ``FCALL`` or ``FUNCTION LOAD``, gets the same scripts by SHA.
A script the server lacks did not run: it is loaded and called once more. Nothing else is
ever sent again, so a script never runs twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from chatstate.adapters.redis.scripts import LuaScript

Command = tuple[Any, ...]
#: A recovery: it yields the commands to send, and receives each one's reply or error.
Recovery = Generator[Command, Any, Any]


class ScriptCalls:
    """How scripts are called on one server: ``functions`` until it refuses them."""

    __slots__ = ("functions",)

    def __init__(self) -> None:
        self.functions = True

    def command(self, script: LuaScript, keys: list[str], args: list[Any]) -> Command:
        """The command calling ``script`` with ``keys`` and ``args``."""
        if self.functions:
            return ("FCALL", script.function, len(keys), *keys, *args)
        return ("EVALSHA", script.sha, len(keys), *keys, *args)

    def recovery(
        self, script: LuaScript, keys: list[str], args: list[Any], error: ResponseError
    ) -> Recovery:
        """After ``error`` answered a call: load the script and call it again.

        ``error`` is raised again when the script may have run."""
        text = str(error)
        if self.functions and _refuses_functions(text):
            self.functions = False
        elif not (isinstance(error, NoScriptError) or "Function not found" in text):
            raise error
        if self.functions:
            try:
                yield ("FUNCTION", "LOAD", "REPLACE", script.library)
            except ResponseError:  # refused (an ACL without it): call scripts by SHA
                self.functions = False
        if not self.functions:
            yield ("SCRIPT", "LOAD", script.text)
        return (yield self.command(script, keys, args))


def _refuses_functions(text: str) -> bool:
    """Whether a reply error says the server or the user has no ``FCALL`` (it did not run)."""
    lowered = text.lower()  # Redis 6 quotes the command with backticks, Redis 7 with quotes
    return "fcall" in lowered and ("unknown command" in lowered or "no permissions" in lowered)


def recover(recovery: Recovery, send: Callable[[Command], Any]) -> Any:
    """Run ``recovery``, sending each command with ``send``; the last reply."""
    command = next(recovery)
    while True:
        try:
            reply = send(command)
        except ResponseError as error:
            command = recovery.throw(error)
            continue
        try:
            command = recovery.send(reply)
        except StopIteration as done:
            return done.value


async def arecover(recovery: Recovery, send: Callable[[Command], Awaitable[Any]]) -> Any:
    """:func:`recover` with a coroutine ``send``."""
    command = next(recovery)
    while True:
        try:
            reply = await send(command)
        except ResponseError as error:
            command = recovery.throw(error)
            continue
        try:
            command = recovery.send(reply)
        except StopIteration as done:
            return done.value
