"""What the chatstate management commands share.

That is ``--namespace``, quiet closed pipes, and progress lines on stderr."""

from __future__ import annotations

import os
from argparse import ArgumentParser
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError, OutputWrapper

from chatstate.adapters.base import StateAdapter
from chatstate.registry import build_adapter


def add_namespace_argument(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        metavar="NS",
        help="the namespace to work on (default: the NAMESPACE of the CHATSTATE setting)",
    )


def adapter_for(namespace: str | None) -> StateAdapter:
    """The adapter the ``CHATSTATE`` setting configures, for ``namespace``.

    ``None`` means the setting's namespace. A misconfiguration or a bad namespace becomes a
    ``CommandError``."""
    options = {} if namespace is None else {"namespace": namespace}
    try:
        return build_adapter(**options)
    except (ImportError, TypeError, ValueError) as exc:
        raise CommandError(f"cannot build the chatstate adapter: {exc}") from exc


@contextmanager
def quiet_on_closed_pipe(stdout: OutputWrapper) -> Iterator[None]:
    """Run the block that writes to ``stdout``, then flush it.

    Its reader may have gone, as with ``… | head``. The command then ends quietly with exit
    status 1, Python's convention for a broken pipe. It shows no ``CommandError: … Broken
    pipe``. The rest of the output goes to ``/dev/null``, so the interpreter's final flush
    reports nothing either."""
    try:
        yield
        stdout.flush()
    except BrokenPipeError:
        try:
            fileno = stdout.fileno()  # the wrapped stream's (Django >= 5.0)
        except (OSError, ValueError):
            fileno = None  # not a file, or Django 4.2's wrapper: nothing to silence
        if fileno is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fileno)
            os.close(devnull)
        raise SystemExit(1) from None


class ProgressStream:
    r"""A command's stderr for progress lines, as plain text written as given.

    It does not use the error style Django gives stderr. It adds no line ending, so ``\r``
    rewrites the line."""

    def __init__(self, stderr: OutputWrapper) -> None:
        self.stderr = stderr

    def isatty(self) -> bool:
        return self.stderr.isatty()

    def write(self, text: str) -> None:
        self.stderr.write(text, style_func=_plain, ending="")

    def flush(self) -> None:
        self.stderr.flush()


def _plain(text: str) -> str:
    return text
