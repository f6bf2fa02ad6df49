"""Inference tasks in Django's admin: to look at, with their history. Tasks are created, changed and deleted
through the API or the console, where admission and the lifecycle run; here a platform admin may only
stop or start them, through the same services."""

from __future__ import annotations

from django.contrib import admin, messages

from controlplane.admin import ReadOnlyAdmin, ReadOnlyInline
from controlplane.errors import PlatformRuleError
from inference_jobs import services
from inference_jobs.models import InferenceTask, TaskEngineLoad, TaskEvent


class TaskEventInline(ReadOnlyInline):
    model = TaskEvent
    fields = ("created_at", "level", "reason", "message", "actor")
    readonly_fields = fields
    show_change_link = False
    ordering = ("-created_at", "-id")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


@admin.register(InferenceTask)
class InferenceTaskAdmin(ReadOnlyAdmin):
    list_display = (
        "name", "tenant", "status", "desired_state", "mode", "compute_pool", "gateway", "instances",
        "compute_units_per_instance", "created_at",
    )  # fmt: skip
    list_filter = ("status", "desired_state", "mode", "tenant", "compute_pool", "gateway")
    list_select_related = ("tenant", "compute_pool", "gateway")
    search_fields = ("name", "served_model_name", "tenant__slug")
    date_hierarchy = "created_at"
    inlines = (TaskEventInline,)
    actions = ("stop", "start")

    def _each(self, request, queryset, service, verb: str) -> None:
        done = 0
        for task in queryset:
            try:
                service(actor=request.user, task=task)
            except PlatformRuleError as exc:
                self.message_user(request, f"{task.tenant.slug}/{task.name}: {exc.message}", messages.WARNING)
            else:
                done += 1
        self.message_user(request, f"{verb} {done} task(s).", messages.SUCCESS)

    @admin.action(description="Stop the selected tasks (keep their ports)")
    def stop(self, request, queryset) -> None:
        self._each(request, queryset.select_related("tenant"), services.task_stop, "Stopped")

    @admin.action(description="Start the selected tasks")
    def start(self, request, queryset) -> None:
        self._each(request, queryset.select_related("tenant"), services.task_start, "Started")


@admin.register(TaskEvent)
class TaskEventAdmin(ReadOnlyAdmin):
    """Every task's history in one place, for operators chasing a problem across tenants."""

    list_display = ["created_at", "task", "level", "reason", "message", "actor"]
    list_filter = ["level", "reason"]
    search_fields = ["task__name", "task__tenant__slug", "message"]
    list_select_related = ["task", "actor"]
    date_hierarchy = "created_at"


@admin.register(TaskEngineLoad)
class TaskEngineLoadAdmin(ReadOnlyAdmin):
    """Each instance's latest engine-load snapshot, as its adapter reported it."""

    list_display = ("task", "instance", "observed_at", "requests_running", "requests_waiting", "kv_cache_usage")
    list_select_related = ("task",)
    search_fields = ("task__name", "instance")
