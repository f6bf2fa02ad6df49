from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api.viewsets import RestrictedReadOnlyViewSet, RoleReadPermission
from telemetry import services
from telemetry.api.serializers import (
    AccessLogSerializer,
    EngineLoadBatchSerializer,
    IngestBatchSerializer,
    IngestRejectedSerializer,
    IngestResultSerializer,
    UsageQuerySerializer,
    UsageSummarySerializer,
)
from telemetry.filtersets import AccessLogFilterSet
from telemetry.ingest import IngestView
from telemetry.models import UsageHour
from telemetry.selectors import access_log_queryset, usage_summary
from tenancy.choices import Action
from tenancy.models import TenantAPIKey


def ingest_schema_of(request_serializer) -> Callable:
    """The schema of an ingest view whose batches ``request_serializer`` describes."""
    token = OpenApiParameter(
        "Authorization", str, OpenApiParameter.HEADER, required=True, description="Bearer <the task's ingest token>"
    )
    return extend_schema(
        request=request_serializer,
        responses={200: IngestResultSerializer, 422: IngestRejectedSerializer},
        parameters=[token],
        auth=[],
    )


ingest_schema = ingest_schema_of(IngestBatchSerializer)


class MetricsIngestView(IngestView):
    """Request metrics from a task's adapter (record format: ``serving/adapter/metrics.py``). Idempotent by
    record id; 422 when some records were malformed (the others are stored)."""

    @ingest_schema
    def post(self, request):
        return super().post(request)

    def store(self, task, records):
        return services.metrics_ingest(task=task, records=records)


class EngineLoadIngestView(IngestView):
    """The engine load of one of the task's instances (requests running and waiting, KV-cache use), sent by its
    adapter every few seconds (``serving/adapter/engine_load.py``). The newest snapshot per instance is kept; an
    older one changes nothing. 422 names the malformed field."""

    @ingest_schema_of(EngineLoadBatchSerializer)
    def post(self, request):
        return super().post(request)

    def store(self, task, records):
        return services.engine_load_ingest(task=task, records=records)


class UsageView(APIView):
    """Requests and input/output tokens by tenant (and task, API key, hour or day) over a window (default: the
    last day), from the hourly counters; every role reads its tenants' usage."""

    @extend_schema(parameters=[UsageQuerySerializer], responses=UsageSummarySerializer)
    def get(self, request):
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = dict(query.validated_data)
        until = params.pop("until", None) or timezone.now()
        since = params.pop("since", None) or until - timedelta(days=1)
        if since >= until:
            raise ValidationError({"since": ["since must be before until."]})
        summary = usage_summary(request.user, since=since, until=until, **params)
        return Response(UsageSummarySerializer(summary).data)


class AccessLogViewSet(RestrictedReadOnlyViewSet):
    """Calls per API key: one row per key, task and hour with requests, errors, tokens and the first and last
    call, from the adapters' request metrics. Tenant admins read their tenants'; platform admins all."""

    queryset = UsageHour.objects.all()
    serializer_class = AccessLogSerializer
    filterset_class = AccessLogFilterSet
    permission_classes = [RoleReadPermission]
    read_action = Action.MANAGE
    ordering_fields = ["hour", "requests"]
    ordering = ["-hour", "api_key_id", "task_id"]

    def base_queryset(self):
        return access_log_queryset()

    def get_serializer(self, *args, **kwargs):
        rows = args[0] if args else None
        if rows is not None:
            ids = {row.api_key_id for row in (rows if isinstance(rows, list) else [rows])}
            names = dict(TenantAPIKey.objects.filter(pk__in=ids).values_list("pk", "name"))
            kwargs.setdefault("context", self.get_serializer_context())["key_names"] = names
        return super().get_serializer(*args, **kwargs)
