"""How the admin shows values: pretty JSON, ages, and links between related rows."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import django
from django.contrib import admin
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.html import escape, format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString

#: Django 6.0 marks breadcrumbs up as ``<ol class="breadcrumbs">`` and styles only that; 5.2
#: as ``<div class="breadcrumbs">``. chatstate's own pages (context key
#: ``chatstate_ol_breadcrumbs``) follow the running Django.
OL_BREADCRUMBS = django.VERSION >= (6, 0)


def pretty_json(value: Any) -> SafeString:
    """``value`` as indented, key-sorted JSON in an HTML-escaped ``<pre>`` block."""
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
    """How long ago ``when`` was; ``"-"`` when unknown."""
    return "-" if when is None else duration(now - when)


def expiry(expires_at: datetime, now: datetime) -> str:
    """``"in 4m 10s"`` for a live lease, ``"expired 2m 03s ago"`` for a lapsed one."""
    if expires_at > now:
        return f"in {duration(expires_at - now)}"
    return f"expired {duration(now - expires_at)} ago"


def changelist_url(site_name: str, model_name: str, **params: str) -> str:
    """The URL of a chatstate changelist, filtered by ``params``, each field=value."""
    url = _changelist(site_name, model_name, get_urlconf(), get_script_prefix())
    return f"{url}?{urlencode(params)}" if params else url


@lru_cache(maxsize=256)
def _changelist(site_name: str, model_name: str, urlconf: Any, prefix: str) -> str:
    """A changelist's URL under this URLconf and script prefix; a page links to it per row."""
    return reverse(f"{site_name}:chatstate_{model_name}_changelist", urlconf=urlconf)


def change_url(site_name: str, obj: Any) -> str:
    """The URL of ``obj``'s read-only change page."""
    return reverse(f"{site_name}:chatstate_{obj._meta.model_name}_change", args=[obj.pk])


def link(url: str, label: str) -> SafeString:
    """An HTML link, its label escaped."""
    return format_html('<a href="{}">{}</a>', url, label)


def related_links(site_name: str, targets: list[tuple[str, str, dict[str, str]]]) -> SafeString:
    """Links to filtered changelists, one per line; "-" for none.

    Each is ``(model_name, label, params)``. Callers pass only the targets whose rows exist,
    as the page's query read them."""
    if not targets:
        return SafeString("-")
    links = [
        link(changelist_url(site_name, model, **params), label) for model, label, params in targets
    ]
    return SafeString("<br>".join(links))


#: An id may wrap after these characters (``slack:C1:1700000000.1``, ``worker-7@host``).
BREAK_AFTER = re.compile(r"([:@./_-])")


def breakable(text: str) -> SafeString:
    """``text``, escaped, that may wrap after ``:``, ``@``, ``.``, ``/``, ``_`` and ``-``."""
    pieces = BREAK_AFTER.split(text)
    return SafeString(
        "".join(str(escape(p)) + ("<wbr>" if BREAK_AFTER.fullmatch(p) else "") for p in pieces)
    )


def utc_text(moment: datetime) -> str:
    """``moment`` as ``2026-11-29 11:30:41 UTC``."""
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def when(moment: datetime | None, now: datetime, suffix: str = "") -> SafeString:
    """How long ago ``moment`` was, like ``"3m 12s ago"``, the exact UTC time in its tooltip."""
    if moment is None:
        return SafeString("-")
    return format_html(
        '<time datetime="{}" title="{}">{}{}</time>',
        moment.astimezone(timezone.utc).isoformat(),
        utc_text(moment),
        duration(now - moment),
        suffix,
    )


def id_column(field: str, description: str, with_namespace: bool = True) -> Any:
    """A list column showing the id ``field`` so that it wraps between its parts.

    With ``with_namespace``, the row's namespace shows beneath it where the page shows
    several namespaces. ``obj.show_namespace`` says so."""

    @admin.display(description=description, ordering=field)
    def column(model_admin: Any, obj: Any) -> SafeString:
        shown = breakable(str(getattr(obj, field)))
        if with_namespace and getattr(obj, "show_namespace", False):
            return format_html(
                '{}<br><span class="chatstate-namespace">{}</span>', shown, obj.namespace
            )
        return shown

    column.__name__ = f"{field}_column"
    return column


def age_column(field: str, description: str, suffix: str = "") -> Any:
    """A list column showing how long ago ``field`` was, the exact time in its tooltip."""

    @admin.display(description=description, ordering=field)
    def column(model_admin: Any, obj: Any) -> SafeString:
        return when(getattr(obj, field), model_admin.now(), suffix)

    column.__name__ = f"{field}_age"
    return column


def brief_value(value: Any, limit: int) -> str:
    """A value as a preview shows it: a scalar as JSON cut to ``limit``, else its size."""
    if isinstance(value, dict):
        return f"{{{len(value)} key{'' if len(value) == 1 else 's'}}}"
    if isinstance(value, list):
        return f"[{len(value)} item{'' if len(value) == 1 else 's'}]"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def state_preview(value: Any, limit: int = 120) -> SafeString:
    """A state map in one line that names every top-level key, sorted, values as room allows.

    It reads ``turns: 3 · topic: "billing" · history: [12 items]``. When that is longer than
    ``limit``, the values are cut shorter, then left out. Past that, the keys that do not
    fit are counted, like ``+4 more keys``. A value that is not a map shows as cut JSON. The
    result is HTML-escaped."""
    if not isinstance(value, dict):
        return format_html("{}", short_json(value, limit))
    if not value:
        return SafeString("{}")
    keys = sorted(value)
    for value_limit in (24, 10):
        text = " · ".join(f"{key}: {brief_value(value[key], value_limit)}" for key in keys)
        if len(text) <= limit:
            return format_html('<span class="chatstate-preview">{}</span>', text)
    shown: list[str] = []
    for key in keys:
        if len(" · ".join([*shown, key])) > limit - 16 and shown:
            break
        shown.append(key)
    rest = len(keys) - len(shown)
    more = f" · +{rest} more key{'' if rest == 1 else 's'}" if rest else ""
    return format_html('<span class="chatstate-preview">{}{}</span>', " · ".join(shown), more)
