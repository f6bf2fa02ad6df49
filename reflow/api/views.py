from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from controlplane.api.viewsets import RestrictedReadOnlyViewSet, RoleWritePermission
from reflow import services
from reflow.api.serializers import (
    BulkReviewResultSerializer,
    BulkReviewSerializer,
    ExportQuerySerializer,
    ReflowRecordSerializer,
    ReviewSerializer,
)
from reflow.export import export_lines
from reflow.filtersets import ReflowRecordFilterSet
from reflow.models import ReflowRecord
from telemetry.api.views import IngestView, ingest_schema
from tenancy.choices import Action


class ReflowIngestView(IngestView):
    """Captured request/response pairs from a task's adapter (record format: ``serving/adapter/reflow.py``).
    Idempotent by record id; 422 when some records were malformed (the others are stored)."""

    @ingest_schema
    def post(self, request):
        return super().post(request)

    def store(self, task, records):
        return services.reflow_ingest(task=task, records=records)


class ReflowRecordViewSet(RestrictedReadOnlyViewSet):
    """Captured request/response pairs of the tenant's tasks with reflow on. Every role lists, reads and
    exports them; tenant admins and members review them (approve, edit, reject)."""

    queryset = ReflowRecord.objects.all()
    serializer_class = ReflowRecordSerializer
    filterset_class = ReflowRecordFilterSet
    permission_classes = [RoleWritePermission]
    write_action = Action.OPERATE
    ordering_fields = ["started_at", "received_at", "reviewed_at"]

    def base_queryset(self):
        return ReflowRecord.objects.select_related("tenant", "reviewed_by")

    @extend_schema(request=ReviewSerializer, responses=ReflowRecordSerializer)
    @action(detail=True, methods=["post"])
    def review(self, request, pk=None):
        """Approve, reject, or edit (give the corrected answer; the record is approved and keeps its original)."""
        record = self.get_object()
        data = self.validated(ReviewSerializer)
        record = services.reflow_review(actor=request.user, record=record, **data)
        return self.respond(record)

    @extend_schema(request=BulkReviewSerializer, responses=BulkReviewResultSerializer)
    @action(detail=False, methods=["post"], url_path="bulk-review")
    def bulk_review(self, request):
        """Approve or reject up to 1,000 records by id; all or nothing."""
        data = self.validated(BulkReviewSerializer)
        reviewable = ReflowRecord.objects.restrict(request.user, Action.OPERATE)
        count = services.reflow_review_bulk(actor=request.user, records=reviewable, **data)
        return Response({"reviewed": count}, status=status.HTTP_200_OK)

    @extend_schema(
        parameters=[ExportQuerySerializer],
        responses={(200, "application/jsonl"): OpenApiResponse(OpenApiTypes.STR, description="One JSON per line")},
    )
    @action(detail=False, methods=["get"])
    def export(self, request):
        """The approved records matching the list's filters as JSONL: ``kind=chat`` (one ``{"messages"}`` per
        record, the edit in place of the output) or ``kind=preference`` (edited records as prompt / chosen /
        rejected)."""
        query = ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        kind = query.validated_data["kind"]
        records = self.filter_queryset(self.get_queryset())
        response = StreamingHttpResponse(export_lines(records, kind), content_type="application/jsonl")
        response["Content-Disposition"] = f'attachment; filename="reflow-{kind}.jsonl"'
        return response
