from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from catalog.sizing import size_model_for_pool
from controlplane.api.viewsets import RestrictedModelViewSet
from inference_jobs import services
from inference_jobs.api.serializers import (
    DryRunResultSerializer,
    InferenceTaskCreatedSerializer,
    InferenceTaskCreateSerializer,
    InferenceTaskScaleSerializer,
    InferenceTaskSerializer,
    InferenceTaskUpdateSerializer,
    IngestTokenSerializer,
    TaskEventSerializer,
)
from inference_jobs.filtersets import InferenceTaskFilterSet, TaskEventFilterSet
from inference_jobs.ingest_tokens import ingest_token_of
from inference_jobs.models import InferenceTask, TaskEvent
from inference_jobs.selectors import task_list_queryset
from telemetry.api.serializers import LatencyQuerySerializer, LatencyReportSerializer
from telemetry.latency import task_latency


class InferenceTaskViewSet(RestrictedModelViewSet):
    """Inference tasks: deployments of one model. Writes need the tenant admin or member role."""

    queryset = InferenceTask.objects.all()
    serializer_class = InferenceTaskSerializer
    filterset_class = InferenceTaskFilterSet
    ordering_fields = ["created_at", "name", "status", "instances"]

    def base_queryset(self):
        tasks = task_list_queryset()
        # A page of tasks shows each one's engine load: one query for the page's snapshots, not one per task.
        return tasks.prefetch_related("engine_loads") if self.action == "list" else tasks

    def get_serializer_class(self):
        return {
            "create": InferenceTaskCreateSerializer,
            "dry_run": InferenceTaskCreateSerializer,
            "partial_update": InferenceTaskUpdateSerializer,
            "scale": InferenceTaskScaleSerializer,
            "events": TaskEventSerializer,
        }.get(self.action, InferenceTaskSerializer)

    @extend_schema(request=InferenceTaskCreateSerializer, responses={201: InferenceTaskCreatedSerializer})
    def create(self, request, *args, **kwargs):
        """Admit and create a task. The answer carries the task's ingest token, once."""
        data = self.validated()
        task = services.task_create(actor=request.user, **data)
        fresh = self.base_queryset().get(pk=task.pk)
        fresh.ingest_token = ingest_token_of(task)
        return Response(InferenceTaskCreatedSerializer(fresh).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=IngestTokenSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-ingest-token")
    def rotate_ingest_token(self, request, pk=None):
        """Issue a new ingest token: the old one is refused at once; the task's adapter gets the new one at the
        next reconcile."""
        token = services.task_ingest_token_rotate(actor=request.user, task=self.get_object())
        return Response({"ingest_token": token})

    @extend_schema(request=InferenceTaskUpdateSerializer, responses=InferenceTaskSerializer)
    def partial_update(self, request, *args, **kwargs):
        task = self.get_object()
        data = self.validated(partial=True)
        return self.respond(services.task_update(actor=request.user, task=task, **data))

    @extend_schema(request=None, responses={202: InferenceTaskSerializer})
    def destroy(self, request, *args, **kwargs):
        """Ask for deletion: the task goes ``deleting`` and disappears once its cluster objects are removed."""
        task = services.task_delete(actor=request.user, task=self.get_object())
        return self.respond(task, status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=InferenceTaskSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self.respond(services.task_start(actor=request.user, task=self.get_object()))

    @extend_schema(request=None, responses=InferenceTaskSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        return self.respond(services.task_stop(actor=request.user, task=self.get_object()))

    @extend_schema(request=InferenceTaskScaleSerializer, responses=InferenceTaskSerializer)
    @action(detail=True, methods=["post"])
    def scale(self, request, pk=None):
        task = self.get_object()
        return self.respond(services.task_scale(actor=request.user, task=task, **self.validated()))

    @extend_schema(request=None, responses=InferenceTaskSerializer)
    @action(detail=True, methods=["post"], url_path="update-image")
    def update_image(self, request, pk=None):
        """Roll the task to the newest version of its runtime image."""
        return self.respond(services.task_update_image(actor=request.user, task=self.get_object()))

    @extend_schema(request=InferenceTaskCreateSerializer, responses=DryRunResultSerializer)
    @action(detail=False, methods=["post"], url_path="dry-run")
    def dry_run(self, request):
        """Would this task be accepted? Every rule's verdict with the code a create would give; creates nothing."""
        dry_run = services.task_dry_run(**self.validated())
        sizing = size_model_for_pool(dry_run.request.model, dry_run.request.compute_pool)
        body = {
            "accepted": dry_run.result.accepted,
            "compute_units_per_instance": dry_run.request.compute_units_per_instance,
            "verdicts": [asdict(verdict) for verdict in dry_run.result.verdicts],
            "sizing": sizing.as_dict(),
        }
        return Response(DryRunResultSerializer(body).data)

    @extend_schema(parameters=[LatencyQuerySerializer], responses=LatencyReportSerializer, filters=False)
    @action(detail=True, methods=["get"])
    def latency(self, request, pk=None):
        """TTFT, TPOT, ITL and E2E percentiles (p50/p90/p99), throughput and goodput against the task's own
        targets: a summary of the window and a series to plot. ``source`` says whether the percentiles are
        exact (raw rows) or from roll-ups (within 1 %)."""
        task = self.get_object()
        query = LatencyQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        report = task_latency(
            task,
            since=params.get("since"),
            until=params.get("until"),
            step_s=params.get("step"),
            source=params["source"],
        )
        return Response(LatencyReportSerializer(report).data)

    @extend_schema(request=None, responses=TaskEventSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        task = self.get_object()
        events = TaskEventFilterSet(
            request.query_params, TaskEvent.objects.filter(task=task).select_related("actor")
        ).qs
        page = self.paginate_queryset(events)
        return self.get_paginated_response(TaskEventSerializer(page, many=True).data)
