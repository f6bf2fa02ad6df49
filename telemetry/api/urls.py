from django.urls import path

from telemetry.api.views import AccessLogViewSet, EngineLoadIngestView, MetricsIngestView, UsageView


def register(router) -> None:
    router.register("access-log", AccessLogViewSet, basename="access-log")


urlpatterns = [
    path("ingest/metrics/", MetricsIngestView.as_view(), name="ingest-metrics"),
    path("ingest/engine-load/", EngineLoadIngestView.as_view(), name="ingest-engine-load"),
    path("usage/", UsageView.as_view(), name="usage"),
]
