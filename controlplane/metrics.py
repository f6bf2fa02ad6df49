"""The control plane's own Prometheus metrics: ``/metrics``.

* ``aicp_http_requests_total{method, view, status}`` and ``aicp_http_request_duration_seconds{method, view}``,
  counted by ``RequestMetricsMiddleware``. ``view`` is the matched URL pattern's ``view_name`` (``task-list``,
  ``console:dashboard``), ``static`` for static files, or ``unmatched``: never the raw path, so the number of
  series stays bounded whatever URLs the world sends. The duration runs to the response's headers; a streamed body (the
  playground's events) is not timed.
* ``aicp_inference_tasks{status}``, ``aicp_tenants`` and ``aicp_database_up``, read from the database when
  scraped (two small queries), and ``aicp_build_info{version}``.

Under gunicorn with several workers each worker counts its own requests; with ``PROMETHEUS_MULTIPROC_DIR`` set
(an empty folder, emptied again when gunicorn starts: ``controlplane/gunicorn_conf.py``) they write their counts
there and any worker's scrape adds them all up. Without it (``runserver``, the tests) the counts are the process's.

``AICP_METRICS_TOKEN`` set: a scrape must send ``Authorization: Bearer <token>``, else 401.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from controlplane.api.exceptions import error_body
from inference_jobs.choices import TaskStatus
from inference_jobs.models import InferenceTask
from tenancy.models import Tenant

log = logging.getLogger(__name__)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # any other: "other"
DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter(
    "aicp_http_requests", "HTTP requests answered, by method, view and status.", ["method", "view", "status"]
)
DURATION = Histogram(
    "aicp_http_request_duration_seconds",
    "Time to answer an HTTP request (to its headers), by method and view.",
    ["method", "view"],
    buckets=DURATION_BUCKETS_S,
)


def _package_version() -> str:
    try:
        return version("aicp")
    except PackageNotFoundError:
        return "unknown"


def route_label(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name
    if request.path_info.startswith(urlsplit(settings.STATIC_URL).path):
        return "static"
    return "unmatched"


class RequestMetricsMiddleware:
    """Counts and times every answer; first in ``MIDDLEWARE``, so HTTPS redirects and static files count too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        method = request.method if request.method in HTTP_METHODS else "other"
        view = route_label(request)
        REQUESTS.labels(method, view, str(response.status_code)).inc()
        DURATION.labels(method, view).observe(elapsed)
        return response


class PlatformCollector(Collector):
    """What the platform holds, read when scraped: every scrape sees the database as it is, whichever worker
    answers, and nothing is kept in step between scrapes."""

    def collect(self):
        build_info = GaugeMetricFamily("aicp_build_info", "The running AICP version.", labels=["version"])
        build_info.add_metric([_package_version()], 1)
        yield build_info
        try:
            rows = InferenceTask.objects.order_by().values("status").annotate(count=Count("pk"))
            tasks_by_status = {row["status"]: row["count"] for row in rows}
            tenants = Tenant.objects.count()
        except DatabaseError as exc:
            log.warning("metrics: the database did not answer: %s", exc)
            yield GaugeMetricFamily("aicp_database_up", "1 when this scrape could read the database.", value=0)
            return
        yield GaugeMetricFamily("aicp_database_up", "1 when this scrape could read the database.", value=1)
        tasks = GaugeMetricFamily("aicp_inference_tasks", "Inference tasks, by status.", labels=["status"])
        for status in TaskStatus.values:
            tasks.add_metric([status], tasks_by_status.get(status, 0))
        yield tasks
        yield GaugeMetricFamily("aicp_tenants", "Tenants on the platform.", value=tenants)


def scrape_registry() -> CollectorRegistry:
    """The request counts (this process's, or every worker's from the multiprocess folder) and the platform's."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)  # a registry is a collector too: the counters above, the process's own metrics
    registry.register(PlatformCollector())
    return registry


def _bearer_token_matches(request, expected: str) -> bool:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected.encode())


@require_safe
def metrics_view(request):
    expected = settings.AICP_METRICS_TOKEN
    if expected and not _bearer_token_matches(request, expected):
        response = JsonResponse(
            error_body("metrics_token_invalid", "Send the metrics token as 'Authorization: Bearer <token>'."),
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(scrape_registry()), content_type=content_type)
