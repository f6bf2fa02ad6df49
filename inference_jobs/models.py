from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from compute_pools.choices import Mode
from inference_jobs.choices import DesiredState, EventLevel, SamplingPolicy, TaskStatus
from inference_jobs.constants import (
    DEFAULT_REPETITION_PENALTY,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    DEFAULT_TPOT_SLO_MS,
    DEFAULT_TTFT_SLO_MS,
    ENGINE_LOAD_FRESH_S,
    MAX_COMPUTE_UNITS_PER_INSTANCE,
    MAX_INSTANCES,
)
from tenancy.querysets import RestrictedQuerySet


def validate_top_p(value: float) -> None:
    """Nucleus sampling keeps the smallest set of tokens whose probability reaches top_p: it must be in (0, 1]."""
    if not 0 < value <= 1:
        raise ValidationError("top_p must be greater than 0 and at most 1.")


class InferenceTask(models.Model):
    """A deployment of one model: the unit tenants create and operate.

    The fields of SPEC's create form are the task's *spec*; ``desired_state`` and ``generation`` say what
    is wanted, ``status``/``status_message``/``ready_instances``/``observed_generation`` what was last seen.
    """

    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.PROTECT, related_name="inference_tasks")
    name = models.SlugField(max_length=63, help_text="Unique within the tenant; lower case, digits and dashes.")
    description = models.TextField(blank=True)
    model = models.ForeignKey("catalog.Model", on_delete=models.PROTECT, related_name="tasks")
    mode = models.CharField(max_length=16, choices=Mode.choices)
    compute_pool = models.ForeignKey("compute_pools.ComputePool", on_delete=models.PROTECT, related_name="tasks")
    gateway = models.ForeignKey("gateways.Gateway", on_delete=models.PROTECT, related_name="tasks")
    compute_units_per_instance = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_COMPUTE_UNITS_PER_INSTANCE)]
    )
    instances = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_INSTANCES)]
    )
    async_batching = models.BooleanField(
        default=True, help_text="Merge concurrent requests into batches on the accelerator."
    )
    reflow_enabled = models.BooleanField(default=False, help_text="Capture request/response pairs for training.")
    temperature = models.FloatField(
        default=DEFAULT_TEMPERATURE, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)]
    )
    top_p = models.FloatField(default=DEFAULT_TOP_P, validators=[validate_top_p])
    repetition_penalty = models.FloatField(
        default=DEFAULT_REPETITION_PENALTY, validators=[MinValueValidator(1.0), MaxValueValidator(2.0)]
    )
    sampling_policy = models.CharField(max_length=16, choices=SamplingPolicy.choices, default=SamplingPolicy.DEFAULTS)
    system_prompt = models.TextField(blank=True)
    served_model_name = models.CharField(max_length=200, blank=True, help_text="Defaults to the task name.")
    ttft_slo_ms = models.PositiveIntegerField(default=DEFAULT_TTFT_SLO_MS, validators=[MinValueValidator(1)])
    tpot_slo_ms = models.PositiveIntegerField(default=DEFAULT_TPOT_SLO_MS, validators=[MinValueValidator(1)])

    runtime_image_version = models.ForeignKey(
        "catalog.RuntimeImageVersion", on_delete=models.PROTECT, related_name="tasks", help_text="Pinned at deploy."
    )
    desired_state = models.CharField(max_length=16, choices=DesiredState.choices, default=DesiredState.RUNNING)
    generation = models.PositiveIntegerField(default=1, help_text="Bumped on every change of the spec.")
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.PENDING)
    status_message = models.TextField(blank=True)
    ready_instances = models.PositiveIntegerField(default=0)
    observed_generation = models.PositiveIntegerField(default=0)

    # The adapter's ingest token (inference_jobs/ingest_tokens.py): a salt to derive it, a digest to check it.
    ingest_token_salt = models.CharField(max_length=32, blank=True, editable=False)
    ingest_token_digest = models.CharField(max_length=64, blank=True, editable=False)
    ingest_token_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"],
                name="task_unique_name_per_tenant",
                violation_error_message="The tenant already has an inference task with this name.",
            ),
            models.CheckConstraint(
                condition=Q(temperature__gte=0) & Q(temperature__lte=2), name="task_temperature_0_2"
            ),
            models.CheckConstraint(condition=Q(top_p__gt=0) & Q(top_p__lte=1), name="task_top_p_0_1"),
            models.CheckConstraint(
                condition=Q(repetition_penalty__gte=1) & Q(repetition_penalty__lte=2),
                name="task_repetition_penalty_1_2",
            ),
            models.CheckConstraint(
                condition=Q(compute_units_per_instance__gte=1) & Q(instances__gte=1), name="task_compute_positive"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="task_tenant_newest"),
            models.Index(fields=["compute_pool", "desired_state"], name="task_pool_state"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def compute_units(self) -> int:
        """Compute units the task holds while it wants to run."""
        return self.compute_units_per_instance * self.instances

    @property
    def effective_served_model_name(self) -> str:
        return self.served_model_name or self.name

    @property
    def engine_load(self) -> EngineLoad | None:
        """The task's engine load, from its instances' latest snapshots; None when none ever reported.

        The instances that count are those whose snapshot is at most ``ENGINE_LOAD_FRESH_S`` older than the
        task's newest: an instance that stopped reporting (replaced, scaled away) drops out, while a task whose
        adapters all stopped (a stopped task) keeps its last figures, dated by ``observed_at``. Reads the
        prefetched ``engine_loads`` when the queryset has them (the task API's list does).
        """
        snapshots = list(self.engine_loads.all())
        if not snapshots:
            return None
        newest = max(s.observed_at for s in snapshots)
        fresh = [s for s in snapshots if s.observed_at >= newest - timedelta(seconds=ENGINE_LOAD_FRESH_S)]

        def total(name: str) -> int | None:
            values = [getattr(s, name) for s in fresh if getattr(s, name) is not None]
            return sum(values) if values else None

        usages = [s.kv_cache_usage for s in fresh if s.kv_cache_usage is not None]
        return EngineLoad(
            requests_running=total("requests_running"),
            requests_waiting=total("requests_waiting"),
            kv_cache_usage=max(usages) if usages else None,
            observed_at=newest,
            instances=len(fresh),
        )


@dataclass(frozen=True)
class EngineLoad:
    """A task's load as its engines report it (``InferenceTask.engine_load``): the requests its instances run and
    queue, summed, and the fullest KV cache among them (the one about to preempt requests; an average would hide
    it). A figure no instance reports is None."""

    requests_running: int | None
    requests_waiting: int | None
    kv_cache_usage: float | None
    observed_at: datetime
    instances: int


class TaskEngineLoad(models.Model):
    """One instance's latest engine-load snapshot (observed state, as ``status``), sent by its adapter every few
    seconds (``serving/adapter/engine_load.py``) and stored by ``inference_jobs.engine_load.engine_load_store``:
    a snapshot replaces the instance's row only when it was observed later. Rows go with their task."""

    task = models.ForeignKey(InferenceTask, on_delete=models.CASCADE, related_name="engine_loads")
    instance = models.CharField(max_length=200, help_text="The adapter that reported: host name and process id.")
    observed_at = models.DateTimeField(help_text="When the adapter read the engine's /metrics (its clock).")
    requests_running = models.PositiveIntegerField(null=True)
    requests_waiting = models.PositiveIntegerField(null=True)
    kv_cache_usage = models.FloatField(null=True, help_text="Fraction of the KV cache in use, 0..1.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "instance"], name="engine_load_unique_task_instance"),
            models.CheckConstraint(
                condition=Q(kv_cache_usage__gte=0) & Q(kv_cache_usage__lte=1), name="engine_load_kv_cache_usage_0_1"
            ),
        ]

    def __str__(self) -> str:
        return f"task {self.task_id} {self.instance} at {self.observed_at:%Y-%m-%d %H:%M:%S}"


class TaskEventQuerySet(RestrictedQuerySet):
    tenant_lookup = "task__tenant_id"


class TaskEvent(models.Model):
    """The task's history: what people did and what the reconciler saw."""

    task = models.ForeignKey(InferenceTask, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    level = models.CharField(max_length=8, choices=EventLevel.choices, default=EventLevel.INFO)
    reason = models.CharField(max_length=64, help_text="CamelCase, as Kubernetes events: Created, Scaled, ImagePull…")
    message = models.TextField(blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    objects = TaskEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.reason}: {self.message[:60]}"
