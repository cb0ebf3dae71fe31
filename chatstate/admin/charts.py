"""Inline SVG charts for the overview: no external asset, no script, readable in both themes.

Each chart is one ``<svg>`` element with a ``viewBox``, so it scales to the page's width.
Its text and axes take the page's text colour, ``currentColor``. So it reads in the admin's
light and dark themes. Every bar carries a ``<title>`` with its exact figures; the browser
shows it as a tooltip. Its ``data-*`` attributes name what it draws."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

MINUTES = 24 * 60
BAR_COLOUR = "#3f87b5"
ORPHAN_COLOUR = "#c2410c"
#: The text attributes of every label (the page's text colour).
FONT = mark_safe('font-family="system-ui, sans-serif" font-size="20" fill="currentColor"')


def nice_ceiling(value: int) -> int:
    """The top of an axis: the smallest of 1, 2, 5, 10, 20, 50, … at least ``value``."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover  (the loop always returns)


def _svg(width: int, height: int, label: str, body: str, css_class: str) -> SafeString:
    return format_html(
        '<svg class="{}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" '
        'width="100%" role="img" aria-label="{}" preserveAspectRatio="xMinYMin meet" '
        'style="max-width: {}px; height: auto; color: inherit">{}</svg>',
        css_class,
        width,
        height,
        label,
        width,
        mark_safe(body),  # built from format_html pieces
    )


@dataclass(frozen=True)
class MinuteCount:
    """Messages claimed in one UTC minute."""

    minute: datetime
    count: int


#: The windows the claims chart may show, in minutes, and the minutes between its labelled
#: grid lines. The chart takes the shortest window holding every recorded minute. So a new
#: bot's first minutes fill the last hour, not a pixel of a day.
SPANS = {60: 10, 180: 30, 360: 60, 720: 120, MINUTES: 180}


def chart_span(counts: Sequence[MinuteCount], end: datetime) -> int:
    """The minutes the claims chart shows.

    It is the shortest of :data:`SPANS` that holds every minute of ``counts`` with claims.
    It is at most the last 24 hours."""
    oldest = min((c.minute for c in counts if c.count > 0), default=end)
    needed = int((end - oldest).total_seconds() // 60) + 1
    return next((span for span in SPANS if span >= needed), MINUTES)


def span_text(span: int) -> str:
    """``span`` minutes in words: ``hour``, ``3 hours``, ``24 hours``."""
    hours = span // 60
    return "hour" if hours == 1 else f"{hours} hours"


def claims_chart(counts: Sequence[MinuteCount], end: datetime) -> SafeString:
    """Messages claimed per minute over the window ending with minute ``end``.

    :func:`chart_span` picks the window, from the last hour up to the last 24 hours. Each
    minute that had claims gets one bar. A minute without a bar had none. Grid lines are
    labelled in UTC. The y axis runs from 0 to a round maximum. The plot is as wide whatever
    the window; a minute's bar is its share of it."""
    span = chart_span(counts, end)
    step, unit = SPANS[span], MINUTES / span  # minutes between labels; width of a minute
    left, top, plot_h, bottom, right = 72, 16, 200, 36, 24
    width, height = left + MINUTES + right, top + plot_h + bottom
    start = end - timedelta(minutes=span - 1)
    peak = max((c.count for c in counts), default=0)
    y_max = nice_ceiling(peak)
    parts: list[str] = []
    for fraction in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - fraction)
        value = y_max * fraction
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" '
                'stroke-opacity="{}" stroke-width="1"/>'
                '<text x="{}" y="{}" text-anchor="end" dominant-baseline="middle" {}>{}</text>',
                left,
                left + MINUTES,
                y,
                y,
                "0.6" if fraction == 0 else "0.15",
                left - 8,
                y,
                FONT,
                f"{value:g}",
            )
        )
    # Grid lines on the clock's multiples of ``step`` minutes, each labelled.
    into_day = start.hour * 60 + start.minute
    tick = start + timedelta(minutes=-into_day % step or step)
    last_label = start
    while tick <= end:
        x = left + (tick - start).total_seconds() / 60 * unit
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" '
                'stroke-opacity="0.15"/>'
                '<text x="{}" y="{}" text-anchor="middle" {}>{}</text>',
                f"{x:g}",
                f"{x:g}",
                top,
                top + plot_h + 6,
                f"{x:g}",
                top + plot_h + 28,
                FONT,
                f"{tick:%H:%M}",
            )
        )
        last_label = tick
        tick += timedelta(minutes=step)
    if (end - last_label).total_seconds() / 60 * unit >= 60:  # room for "now" at the end
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="end" {}>now</text>',
                left + MINUTES,
                top + plot_h + 28,
                FONT,
            )
        )
    # Crisp edges keep a bar at least a pixel wide when the chart is drawn narrower than
    # its view box (a minute of a day's window is one unit).
    parts.append('<g shape-rendering="crispEdges">')
    # One bar per minute with claims (up to 1,440): plain formatting, every value a number
    # or a formatted time, so there is nothing to escape.
    for point in counts:
        offset = int((point.minute - start).total_seconds() // 60)
        if point.count <= 0 or not 0 <= offset < span:
            continue
        bar_h = max(plot_h * point.count / y_max, 1.5)
        plural = "" if point.count == 1 else "s"
        parts.append(
            f'<rect class="chatstate-bar" x="{left + offset * unit:g}" '
            f'y="{top + plot_h - bar_h:.1f}" width="{unit:g}" height="{bar_h:.1f}" '
            f'fill="{BAR_COLOUR}" data-minute="{point.minute:%Y-%m-%dT%H:%M}Z" '
            f'data-count="{point.count}">'
            f"<title>{point.minute:%H:%M} UTC: {point.count} message{plural} claimed</title>"
            "</rect>"
        )
    parts.append("</g>")
    label = f"Messages claimed per minute, {start:%H:%M} to {end:%H:%M} UTC; peak {peak}"
    return _svg(width, height, label, "".join(parts), "chatstate-chart chatstate-claims")


@dataclass(frozen=True)
class QueueDepth:
    """A queue of pending entries: its key, how many wait, whether a live lock holds it."""

    key: str
    depth: int
    live_holder: bool
    url: str


def queue_chart(queues: Sequence[QueueDepth], label_chars: int = 44) -> SafeString:
    """The queues as horizontal bars, deepest first, each labelled with its key and depth.

    A key is cut to ``label_chars``, and shown in full in the tooltip. Queues with no live
    holder take the warning colour. Each label links to the queue's entries."""
    left, bar_w, right, row_h, top = 560, 840, 120, 34, 8
    width = left + bar_w + right
    height = top * 2 + row_h * max(len(queues), 1)
    x_max = max((q.depth for q in queues), default=1)
    parts: list[str] = []
    for i, queue in enumerate(queues):
        y = top + i * row_h
        length = max(bar_w * queue.depth / x_max, 2)
        key = queue.key if len(queue.key) <= label_chars else queue.key[: label_chars - 1] + "…"
        holder = "live holder" if queue.live_holder else "no live holder"
        parts.append(
            format_html(
                '<a href="{}"><text x="{}" y="{}" text-anchor="end" dominant-baseline="middle" '
                '{} text-decoration="underline">{}<title>{}</title></text></a>'
                '<rect class="chatstate-bar" x="{}" y="{}" width="{}" height="{}" fill="{}" '
                'data-key="{}" data-depth="{}" data-live-holder="{}">'
                "<title>{}: {} pending ({})</title></rect>"
                '<text x="{}" y="{}" dominant-baseline="middle" {}>{}</text>',
                queue.url,
                left - 12,
                y + row_h / 2,
                FONT,
                key,
                queue.key,
                left,
                y + 5,
                f"{length:.1f}",
                row_h - 10,
                BAR_COLOUR if queue.live_holder else ORPHAN_COLOUR,
                queue.key,
                queue.depth,
                "true" if queue.live_holder else "false",
                queue.key,
                queue.depth,
                holder,
                f"{left + length + 8:.1f}",
                y + row_h / 2,
                FONT,
                queue.depth,
            )
        )
    label = f"Pending entries of the {len(queues)} deepest queues"
    return _svg(width, height, label, "".join(parts), "chatstate-chart chatstate-queues")
