"""What the chatstate management commands share: the ``--namespace`` option."""

from __future__ import annotations

from argparse import ArgumentParser

from django.core.management.base import CommandError

from chatstate.adapters.base import StateAdapter
from chatstate.registry import build_adapter


def add_namespace_argument(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        metavar="NS",
        help="the namespace to work on (default: the NAMESPACE of the CHATSTATE setting)",
    )


def adapter_for(namespace: str | None) -> StateAdapter:
    """The configured adapter (``CHATSTATE`` setting) for ``namespace`` (``None``: the
    setting's); a misconfiguration or a bad namespace becomes a ``CommandError``."""
    options = {} if namespace is None else {"namespace": namespace}
    try:
        return build_adapter(**options)
    except (ImportError, TypeError, ValueError) as exc:
        raise CommandError(f"cannot build the chatstate adapter: {exc}") from exc
