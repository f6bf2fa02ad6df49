"""What an orchestrator is given: a plain snapshot of one task's desired state, read from the database once.

Backends never touch the ORM; they get a ``TaskSpec`` (and a ``TenantSpec``) and return what they saw. That
keeps rendering pure (same spec, same objects) and lets the reconciler read every task of a sweep with a few
queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Prefetch, Q
from django.utils import timezone

from inference_jobs.choices import DesiredState
from inference_jobs.ingest_tokens import ingest_token_of
from inference_jobs.models import InferenceTask
from tenancy.models import TenantAPIKey


@dataclass(frozen=True)
class TenantSpec:
    id: int
    slug: str
    max_compute_units: int
    max_tokens_per_minute: int


@dataclass(frozen=True)
class TaskSpec:
    """One task as its pods need it. ``instances`` is what should run now: 0 when stopped or being deleted."""

    id: int
    name: str
    tenant: TenantSpec
    desired_state: str
    generation: int
    mode: str
    vendor: str
    resource_name: str  # the device plugin's resource, e.g. nvidia.com/gpu; "" for CPU pools
    compute_units_per_instance: int
    memory_per_unit_gib: int  # the pool's memory per card (per core on a CPU pool)
    instances: int
    async_batching: bool
    temperature: float
    top_p: float
    repetition_penalty: float
    sampling_policy: str
    system_prompt: str
    served_model_name: str
    ttft_slo_ms: int
    tpot_slo_ms: int
    reflow_enabled: bool
    image: str  # repository:tag, or repository@sha256:... when the version pins a digest
    image_version: str
    model_path: str  # the model's folder, relative to the storage root
    context_length: int | None = None  # from the model's config, where it states one
    node_selector: dict = field(default_factory=dict)
    tolerations: list = field(default_factory=list)
    gateway: str = ""  # the gateway's slug, which names its Gateway object
    port: int | None = None
    api_keys: tuple[tuple[int, str], ...] = ()  # (id, sha256 digest) of the tenant's usable keys
    ingest_url: str = ""
    ingest_token: str = ""

    @property
    def deleting(self) -> bool:
        return self.desired_state == DesiredState.DELETED


def _usable_keys():
    now = timezone.now()
    usable = Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    return TenantAPIKey.objects.filter(usable)


def task_specs(task_ids=None) -> list[TaskSpec]:
    """Specs of the given tasks (all tasks when None), in a constant number of queries."""
    queryset = InferenceTask.objects.select_related(
        "tenant",
        "model",
        "compute_pool__accelerator_type",
        "gateway",
        "gateway_port",
        "runtime_image_version__image",
    ).prefetch_related(Prefetch("tenant__api_keys", queryset=_usable_keys().order_by("pk"), to_attr="usable_keys"))
    if task_ids is not None:
        queryset = queryset.filter(pk__in=list(task_ids))
    return [spec_of(task) for task in queryset.order_by("pk")]


def spec_of(task: InferenceTask) -> TaskSpec:
    tenant = task.tenant
    version = task.runtime_image_version
    image = version.image.repository + (f"@{version.digest}" if version.digest else f":{version.version}")
    accelerator = task.compute_pool.accelerator_type
    running = task.desired_state == DesiredState.RUNNING
    port = getattr(task, "gateway_port", None)
    keys = getattr(tenant, "usable_keys", None)
    if keys is None:
        keys = _usable_keys().filter(tenant=tenant).order_by("pk")
    return TaskSpec(
        id=task.pk,
        name=task.name,
        tenant=TenantSpec(tenant.pk, tenant.slug, tenant.max_compute_units, tenant.max_tokens_per_minute),
        desired_state=task.desired_state,
        generation=task.generation,
        mode=task.mode,
        vendor=accelerator.vendor,
        resource_name=accelerator.kubernetes_resource_name,
        compute_units_per_instance=task.compute_units_per_instance,
        memory_per_unit_gib=task.compute_pool.memory_per_card_gib,
        instances=task.instances if running else 0,
        async_batching=task.async_batching,
        temperature=task.temperature,
        top_p=task.top_p,
        repetition_penalty=task.repetition_penalty,
        sampling_policy=task.sampling_policy,
        system_prompt=task.system_prompt,
        served_model_name=task.effective_served_model_name,
        ttft_slo_ms=task.ttft_slo_ms,
        tpot_slo_ms=task.tpot_slo_ms,
        reflow_enabled=task.reflow_enabled,
        image=image,
        image_version=version.version,
        model_path=task.model.storage_path,
        context_length=task.model.context_length,
        node_selector=dict(task.compute_pool.node_selector or {}),
        tolerations=list(task.compute_pool.tolerations or []),
        gateway=task.gateway.slug,
        port=port.port if port else None,
        api_keys=tuple((key.pk, key.digest) for key in keys),
        ingest_url=settings.AICP_INGEST_URL,
        ingest_token=ingest_token_of(task),
    )
