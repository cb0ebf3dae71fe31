"""How the admin shows values: pretty JSON, ages, and links between related rows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString


def pretty_json(value: Any) -> SafeString:
    """``value`` as indented, key-sorted JSON in a ``<pre>`` block (HTML-escaped)."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html('<pre class="chatstate-json">{}</pre>', text)


def short_json(value: Any, limit: int = 80) -> str:
    """``value`` as one line of JSON, cut to ``limit`` characters with an ellipsis."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration(delta: timedelta) -> str:
    """A span as an operator reads it: ``"45s"``, ``"3m 12s"``, ``"2h 05m"``, ``"3d 4h"``."""
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def age(when: datetime | None, now: datetime) -> str:
    """How long ago ``when`` was (``"-"`` when unknown)."""
    return "-" if when is None else duration(now - when)


def expiry(expires_at: datetime, now: datetime) -> str:
    """``"in 4m 10s"`` for a live lease, ``"expired 2m 03s ago"`` for a lapsed one."""
    if expires_at > now:
        return f"in {duration(expires_at - now)}"
    return f"expired {duration(now - expires_at)} ago"


def changelist_url(site_name: str, model_name: str, **params: str) -> str:
    """The URL of a chatstate changelist, filtered by ``params`` (field=value)."""
    url = reverse(f"{site_name}:chatstate_{model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def change_url(site_name: str, obj: Any) -> str:
    """The URL of ``obj``'s (read-only) change page."""
    return reverse(f"{site_name}:chatstate_{obj._meta.model_name}_change", args=[obj.pk])


def link(url: str, label: str) -> SafeString:
    """An HTML link (label escaped)."""
    return format_html('<a href="{}">{}</a>', url, label)


def thread_links(site_name: str, namespace: str, thread_id: str, exclude: str = "") -> SafeString:
    """Links from a thread to its lock, subscription and state (filtered changelists).

    ``exclude`` names the model of the page the links are on (no link to itself).
    """
    targets = [
        ("lock", "lock", {"key": thread_id}),
        ("subscription", "subscription", {"thread_id": thread_id}),
        ("threadstate", "state", {"thread_id": thread_id}),
    ]
    links = [
        link(changelist_url(site_name, model, namespace=namespace, **params), label)
        for model, label, params in targets
        if model != exclude
    ]
    return SafeString(" · ".join(links))
