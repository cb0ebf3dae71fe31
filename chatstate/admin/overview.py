"""The namespace overview.

It charts claims per minute and queue depths. It lists queues with no live holder and counts
rows per model. It shows the oldest held lock and the deepest queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Model
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.http import urlencode

from chatstate.admin import activity, charts, display
from chatstate.admin.indexed import EstimatedCountPaginator, distinct_values
from chatstate.models import (
    ChannelState,
    DedupeEntry,
    ListHead,
    Lock,
    OutboxMessage,
    PendingLockEntry,
    Subscription,
    ThreadState,
)

MODELS: tuple[type[Model], ...] = (
    Subscription,
    DedupeEntry,
    ThreadState,
    ChannelState,
    Lock,
    PendingLockEntry,
    ListHead,
    OutboxMessage,
)


@dataclass(frozen=True)
class ModelCount:
    """One line of the overview: a model, how many rows the namespace has, where to see them."""

    name: str
    count: str
    url: str


def bounded_count(queryset: Any) -> str:
    """The row count as the changelists give it.

    It is exact up to ``exact_limit`` rows, from an index range. Beyond that it is
    PostgreSQL's estimate, "about …", or "more than …" elsewhere."""
    return EstimatedCountPaginator(queryset.order_by("pk"), 1).count_label


def namespaces(using: str) -> list[str]:
    """Every namespace with at least one row in some chatstate table, by index probes only."""
    found: set[str] = set()
    for model in MODELS:
        found.update(distinct_values(model, using, "namespace"))
    return sorted(found)


def overview_context(site: AdminSite, request: HttpRequest, using: str) -> dict[str, Any]:
    """What the overview page shows for the namespace in ``?namespace=``, else the first."""
    names = namespaces(using)
    namespace = request.GET.get("namespace") or (names[0] if names else "")
    now: datetime = timezone.now()

    def queue_url(key: str) -> str:
        return display.changelist_url(site.name, "pendinglockentry", namespace=namespace, key=key)

    counts = [
        ModelCount(
            name=str(model._meta.verbose_name_plural),
            count=bounded_count(model._default_manager.using(using).filter(namespace=namespace)),
            url=display.changelist_url(
                site.name, model._meta.model_name or "", namespace=namespace
            ),
        )
        for model in MODELS
        if model in site._registry and site._registry[model].has_view_permission(request)
    ]
    locks = Lock.objects.using(using).filter(namespace=namespace)
    oldest = locks.order_by("acquired_at", "pk").first()
    deepest = (
        PendingLockEntry.objects.using(using)
        .filter(namespace=namespace)
        .values("key")
        .annotate(depth=Count("id"))
        .order_by("-depth", "key")
        .first()
    )
    claims, end = activity.claims_per_minute(using, namespace, now)
    queues = activity.deepest_queues(using, namespace)
    orphans = activity.orphaned_queues(using, namespace)
    return {
        **site.each_context(request),
        "chatstate_ol_breadcrumbs": display.OL_BREADCRUMBS,
        "claims_chart": charts.claims_chart(claims, end) if claims else "",
        "claims_span": charts.span_text(charts.chart_span(claims, end)),
        "claims_total": sum(c.count for c in claims),
        "claims_last_hour": sum(c.count for c in claims if c.minute > end - timedelta(hours=1)),
        "claims_peak": max(claims, key=lambda c: c.count) if claims else None,
        "queue_chart": charts.queue_chart(
            [
                charts.QueueDepth(q.key, q.depth, q.live_holder(now), queue_url(q.key))
                for q in queues
            ]
        )
        if queues
        else "",
        "queues_shown": activity.QUEUES_SHOWN,
        "orphans": [
            {
                "key": q.key,
                "depth": q.depth,
                "oldest": q.oldest,
                "waiting": display.age(q.oldest, now),
                "lock": "missing"
                if q.lock_expires_at is None
                else display.expiry(q.lock_expires_at, now),
                "url": queue_url(q.key),
            }
            for q in orphans
        ],
        "orphans_limit": activity.ORPHANS_SHOWN,
        "title": f"Namespace overview: {namespace}" if namespace else "Namespace overview",
        "namespaces": [(name, "?" + urlencode({"namespace": name})) for name in names],
        "namespace": namespace,
        "counts": counts,
        "oldest_lock": oldest,
        "oldest_lock_age": display.age(oldest.acquired_at, now) if oldest else "",
        "oldest_lock_url": display.change_url(site.name, oldest) if oldest else "",
        "deepest_queue": deepest,
        "deepest_queue_url": display.changelist_url(
            site.name, "pendinglockentry", namespace=namespace, key=deepest["key"]
        )
        if deepest
        else "",
    }


def overview_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    """The overview page; 403 for staff who may not view locks."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    using = model_admin.get_queryset(request).db
    context = overview_context(model_admin.admin_site, request, using)
    context["opts"] = model_admin.opts
    return TemplateResponse(request, "admin/chatstate/overview.html", context)
