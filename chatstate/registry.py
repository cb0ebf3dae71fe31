"""``get_adapter()``: the process-wide adapter built from the ``CHATSTATE`` setting."""

from __future__ import annotations

import threading
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from chatstate import conf
from chatstate.adapters.base import StateAdapter

_lock = threading.Lock()
_adapter: StateAdapter | None = None


def adapter_class(path: str) -> type[StateAdapter]:
    """The ``StateAdapter`` subclass at dotted ``path``; else ``ImportError`` or ``TypeError``."""
    cls = import_string(path)
    if not (isinstance(cls, type) and issubclass(cls, StateAdapter)):
        raise TypeError(f"{path} is not a chatstate StateAdapter subclass")
    return cls


def build_adapter(path: str | None = None, **options: Any) -> StateAdapter:
    """A new adapter: ``path`` and ``options``, or the ``CHATSTATE`` setting's when omitted."""
    settings = conf.chatstate_settings()
    if path is None:
        path = settings["ADAPTER"]
        options = {**settings["OPTIONS"], **options}
    cls = adapter_class(path)
    options.setdefault("namespace", settings["NAMESPACE"])
    return cls(**options)


def get_adapter(path: str | None = None, **options: Any) -> StateAdapter:
    """The process-wide adapter from settings, built once like ``django.core.cache.caches``.

    With a ``path`` or options, each call builds a fresh adapter instead. The cached one is
    dropped whenever the ``CHATSTATE`` setting changes, as ``override_settings`` does in
    tests."""
    global _adapter
    if path is not None or options:
        return build_adapter(path, **options)
    adapter = _adapter
    if adapter is None:
        with _lock:
            if _adapter is None:
                _adapter = build_adapter()
            adapter = _adapter
    return adapter


def reset() -> None:
    """Forget the cached adapter; the next ``get_adapter()`` builds a new one."""
    global _adapter
    with _lock:
        _adapter = None


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("CHATSTATE", "DATABASES", "CACHES"):
        reset()
