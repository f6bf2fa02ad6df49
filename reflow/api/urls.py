from django.urls import path

from reflow.api.views import ReflowIngestView, ReflowRecordViewSet


def register(router) -> None:
    router.register("reflow-records", ReflowRecordViewSet, basename="reflow-record")


urlpatterns = [path("ingest/reflow/", ReflowIngestView.as_view(), name="ingest-reflow")]
