from django.urls import path

from telemetry.api.views import AccessLogViewSet, MetricsIngestView, UsageView


def register(router) -> None:
    router.register("access-log", AccessLogViewSet, basename="access-log")


urlpatterns = [
    path("ingest/metrics/", MetricsIngestView.as_view(), name="ingest-metrics"),
    path("usage/", UsageView.as_view(), name="usage"),
]
