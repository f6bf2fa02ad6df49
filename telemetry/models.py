"""What the adapters measure, as stored: one raw row per request for a bounded time, and roll-ups kept long.

Rows name their task by id, not by a foreign key: usage and latency outlive the task they describe (a
deleted task's tokens were still used). The tenant is a real relation: a tenant's telemetry goes with it.
"""

from __future__ import annotations

from django.db import models

from telemetry.choices import Resolution
from tenancy.querysets import RestrictedQuerySet


class RequestMetric(models.Model):
    """One request a task served, as its adapter measured it (record format: ``serving/adapter/metrics.py``).

    Kept for ``AICP_METRICS_RAW_RETENTION_DAYS``; exact percentiles of recent windows are computed from
    these rows. ``good`` says whether the request met the task's latency targets in force when it arrived
    at the control plane (see ``telemetry/records.py``).
    """

    id = models.UUIDField(primary_key=True, help_text="The adapter's request id (X-Request-Id).")
    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, related_name="+")
    task_id = models.BigIntegerField()
    api_key_id = models.BigIntegerField()
    started_at = models.DateTimeField()
    received_at = models.DateTimeField()
    status = models.PositiveSmallIntegerField()
    stream = models.BooleanField()
    ttft_ms = models.FloatField(null=True)
    tpot_ms = models.FloatField(null=True)
    e2e_ms = models.FloatField()
    itl_hist = models.JSONField(null=True, help_text="The request's chunk gaps as a histogram (telemetry/sketch).")
    chunks = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    good = models.BooleanField()

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["task_id", "started_at"], name="metric_task_started"),
            models.Index(fields=["tenant", "started_at"], name="metric_tenant_started"),
            models.Index(fields=["started_at"], name="metric_started"),
        ]

    def __str__(self) -> str:
        return f"task {self.task_id} {self.started_at:%Y-%m-%d %H:%M:%S} {self.status}"


class LatencyRollup(models.Model):
    """One task's requests in one hour or one day: counts and latency histograms (``telemetry/sketch.py``).

    Written in the transaction that stores the raw rows, once per new row, so a re-sent batch adds nothing.
    A 30-day query reads about 30 day rows plus the hours at its edges, whatever the traffic.
    """

    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, related_name="+")
    task_id = models.BigIntegerField()
    resolution = models.CharField(max_length=4, choices=Resolution.choices)
    start = models.DateTimeField()
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    good = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    ttft_hist = models.JSONField(default=dict)
    tpot_hist = models.JSONField(default=dict)
    itl_hist = models.JSONField(default=dict)
    e2e_hist = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task_id", "resolution", "start"], name="rollup_unique_task_period"),
        ]
        indexes = [models.Index(fields=["resolution", "start"], name="rollup_resolution_start")]

    def __str__(self) -> str:
        return f"task {self.task_id} {self.resolution} {self.start:%Y-%m-%d %H:%M}"


class UsageHour(models.Model):
    """Requests and tokens of one API key on one task in one hour: the tenant's usage and access audit."""

    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, related_name="+")
    task_id = models.BigIntegerField()
    api_key_id = models.BigIntegerField()
    hour = models.DateTimeField()
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    first_request_at = models.DateTimeField(null=True)
    last_request_at = models.DateTimeField(null=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "task_id", "api_key_id", "hour"], name="usage_unique_hour"),
        ]
        indexes = [
            models.Index(fields=["tenant", "hour"], name="usage_tenant_hour"),
            models.Index(fields=["hour"], name="usage_hour"),
        ]

    def __str__(self) -> str:
        return f"key {self.api_key_id} on task {self.task_id} at {self.hour:%Y-%m-%d %H:00}"
