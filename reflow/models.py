from __future__ import annotations

from django.conf import settings
from django.db import models

from reflow.choices import Endpoint, ReviewStatus
from tenancy.querysets import RestrictedQuerySet


class ReflowRecord(models.Model):
    """One captured request/response pair of a task with reflow on (record format: ``serving/adapter/reflow.py``).

    ``messages`` is the conversation as the engine received it, the task's system prompt included; a
    completions prompt is stored as one user message. A reviewer's edit goes to ``edited_output``: the
    captured ``output`` is never changed, so an edited record can also be exported as a preference pair.
    The task is named by id and by its name at capture: records outlive the task that captured them.
    """

    id = models.UUIDField(primary_key=True, help_text="The adapter's request id (X-Request-Id).")
    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, related_name="reflow_records")
    task_id = models.BigIntegerField()
    task_name = models.CharField(max_length=63)
    api_key_id = models.BigIntegerField()
    endpoint = models.CharField(max_length=16, choices=Endpoint.choices)
    messages = models.JSONField()
    parameters = models.JSONField(default=dict)
    output = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=64, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    ttft_ms = models.FloatField(null=True)
    tpot_ms = models.FloatField(null=True)
    status = models.PositiveSmallIntegerField(default=200)
    runtime_image_version = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True)
    received_at = models.DateTimeField()

    review_status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.PENDING)
    edited_output = models.TextField(null=True, blank=True, help_text="The reviewer's corrected answer.")
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reviewed_at = models.DateTimeField(null=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "id"]
        indexes = [
            models.Index(fields=["tenant", "-started_at"], name="reflow_tenant_newest"),
            models.Index(fields=["task_id", "-started_at"], name="reflow_task_newest"),
            models.Index(fields=["tenant", "review_status", "-started_at"], name="reflow_tenant_status"),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} {self.started_at:%Y-%m-%d %H:%M:%S}"
