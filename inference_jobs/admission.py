"""Admission: would this task be accepted? One list of rules serves both the dry run and the real create.

Each rule looks at an ``AdmissionRequest`` and raises its ``PlatformRuleError`` when it refuses. The dry
run evaluates every rule and reports each verdict; ``task_create`` evaluates the same rules while holding
the locks of ``controlplane.locks`` and refuses with the first error. Because both paths call the same
functions, the dry run's codes are by construction the codes a real create would give.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from catalog.choices import ModelStatus
from catalog.models import Model, RuntimeImageVersion
from compute_pools.choices import Mode
from compute_pools.models import ComputePool, PoolGrant
from controlplane import errors
from gateways.models import Gateway
from inference_jobs.constants import MAX_TASKS_PER_PLATFORM
from inference_jobs.models import InferenceTask
from inference_jobs.selectors import newest_runtime_image_version, platform_task_count, pool_usage, tenant_usage
from tenancy.models import Tenant


@dataclass
class AdmissionRequest:
    tenant: Tenant
    name: str
    model: Model
    mode: str
    compute_pool: ComputePool
    gateway: Gateway
    compute_units_per_instance: int
    instances: int

    @property
    def compute_units(self) -> int:
        return self.compute_units_per_instance * self.instances

    @cached_property
    def tenant_usage(self):
        return tenant_usage(self.tenant)

    @cached_property
    def pool_usage(self):
        return pool_usage(self.compute_pool, self.tenant)

    @cached_property
    def grant(self) -> PoolGrant | None:
        return PoolGrant.objects.filter(pool=self.compute_pool, tenant=self.tenant).first()

    @cached_property
    def runtime_image_version(self) -> RuntimeImageVersion | None:
        return newest_runtime_image_version(mode=self.mode, vendor=self.compute_pool.accelerator_type.vendor)


def rule_platform_task_limit(request: AdmissionRequest) -> None:
    if platform_task_count() >= MAX_TASKS_PER_PLATFORM:
        raise errors.PlatformTaskLimitError(
            f"The platform already runs its maximum of {MAX_TASKS_PER_PLATFORM} inference tasks; "
            "delete a task before creating another."
        )


def rule_tenant_task_quota(request: AdmissionRequest) -> None:
    if request.tenant_usage.tasks >= request.tenant.max_tasks:
        raise errors.TenantTaskQuotaError(
            f"Tenant '{request.tenant.slug}' has reached its quota of {request.tenant.max_tasks} inference tasks."
        )


def rule_task_name_unique(request: AdmissionRequest) -> None:
    if InferenceTask.objects.filter(tenant=request.tenant, name=request.name).exists():
        raise errors.TaskNameTakenError(f"Tenant '{request.tenant.slug}' already has a task named '{request.name}'.")


def rule_model_ready(request: AdmissionRequest) -> None:
    if request.model.status != ModelStatus.READY:
        raise errors.ModelNotReadyError(
            f"Model '{request.model.name}' is {request.model.get_status_display().lower()}, not ready to serve."
        )


def rule_normal_mode_model(request: AdmissionRequest) -> None:
    if request.mode != Mode.NORMAL:
        return
    kinds = [
        kind
        for kind, flag in (("encrypted", request.model.encrypted), ("compressed", request.model.compressed))
        if flag
    ]
    if kinds:
        raise errors.NormalModeModelUnsupportedError(
            f"Normal mode does not serve {' or '.join(kinds)} models; model '{request.model.name}' is "
            f"{' and '.join(kinds)}. Choose high-performance mode or another model."
        )


def rule_pool_granted(request: AdmissionRequest) -> None:
    if request.grant is None:
        raise errors.PoolNotGrantedError(
            f"Compute pool '{request.compute_pool.slug}' is not granted to tenant '{request.tenant.slug}'."
        )


def rule_pool_supports_mode(request: AdmissionRequest) -> None:
    accelerator = request.compute_pool.accelerator_type
    if not accelerator.supports_mode(request.mode):
        raise errors.ModeNotSupportedByPoolError(
            f"Compute pool '{request.compute_pool.slug}' has {accelerator.name} cards, which do not run "
            f"{Mode(request.mode).label.lower()} mode."
        )


def rule_runtime_image_available(request: AdmissionRequest) -> None:
    if request.runtime_image_version is None:
        vendor = request.compute_pool.accelerator_type.get_vendor_display()
        raise errors.RuntimeImageUnavailableError(
            f"No runtime image is published for {Mode(request.mode).label.lower()} mode on {vendor} cards."
        )


def rule_runtime_installed(request: AdmissionRequest) -> None:
    from inference_jobs.orchestrator import runtime_missing

    if missing := runtime_missing(request.mode):
        raise errors.RuntimeNotInstalledError(missing)


def rule_tenant_compute_quota(request: AdmissionRequest) -> None:
    used, limit = request.tenant_usage.compute_units, request.tenant.max_compute_units
    if used + request.compute_units > limit:
        raise errors.TenantComputeQuotaError(
            f"The task needs {request.compute_units} compute units; tenant '{request.tenant.slug}' uses {used} "
            f"of its quota of {limit}."
        )


def rule_pool_capacity(request: AdmissionRequest) -> None:
    used, capacity = request.pool_usage.used, request.compute_pool.capacity_compute_units
    if used + request.compute_units > capacity:
        raise errors.PoolCapacityExceededError(
            f"The task needs {request.compute_units} compute units; compute pool '{request.compute_pool.slug}' "
            f"has {max(capacity - used, 0)} of {capacity} free."
        )


def rule_pool_grant_share(request: AdmissionRequest) -> None:
    share = request.grant.max_compute_units if request.grant else None
    used = request.pool_usage.used_by_tenant
    if share is not None and used + request.compute_units > share:
        raise errors.PoolGrantShareExceededError(
            f"The task needs {request.compute_units} compute units; tenant '{request.tenant.slug}' uses {used} of "
            f"its share of {share} in compute pool '{request.compute_pool.slug}'."
        )


def rule_gateway_active(request: AdmissionRequest) -> None:
    if not request.gateway.is_active:
        raise errors.GatewayInactiveError(f"Gateway '{request.gateway.slug}' takes no new tasks; choose another.")


def rule_gateway_port_free(request: AdmissionRequest) -> None:
    from gateways.selectors import gateway_free_ports

    if not gateway_free_ports(request.gateway):
        raise errors.GatewayPortsExhaustedError(
            f"Gateway '{request.gateway.slug}' has all {request.gateway.port_count} ports in use; "
            "choose another gateway."
        )


Rule = Callable[[AdmissionRequest], None]

# Each rule with the error it raises, in the order a person fixes things in: platform, tenant, the task
# itself, where it runs, how it is reached. task_create refuses with the first failing rule.
ADMISSION_RULES: tuple[tuple[type[errors.PlatformRuleError], Rule], ...] = (
    (errors.PlatformTaskLimitError, rule_platform_task_limit),
    (errors.TenantTaskQuotaError, rule_tenant_task_quota),
    (errors.TaskNameTakenError, rule_task_name_unique),
    (errors.ModelNotReadyError, rule_model_ready),
    (errors.NormalModeModelUnsupportedError, rule_normal_mode_model),
    (errors.PoolNotGrantedError, rule_pool_granted),
    (errors.ModeNotSupportedByPoolError, rule_pool_supports_mode),
    (errors.RuntimeImageUnavailableError, rule_runtime_image_available),
    (errors.RuntimeNotInstalledError, rule_runtime_installed),
    (errors.TenantComputeQuotaError, rule_tenant_compute_quota),
    (errors.PoolCapacityExceededError, rule_pool_capacity),
    (errors.PoolGrantShareExceededError, rule_pool_grant_share),
    (errors.GatewayInactiveError, rule_gateway_active),
    (errors.GatewayPortsExhaustedError, rule_gateway_port_free),
)


@dataclass(frozen=True)
class Verdict:
    """One rule's answer. ``rule`` is the code its refusal carries, accepted or not."""

    rule: str
    accepted: bool
    message: str = ""
    field: str | None = None


@dataclass(frozen=True)
class AdmissionResult:
    verdicts: list[Verdict] = field(default_factory=list)
    refusals: list[errors.PlatformRuleError] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.refusals


def admission_evaluate(request: AdmissionRequest) -> AdmissionResult:
    """Every rule's verdict for ``request``; creates nothing."""
    result = AdmissionResult()
    for error_class, rule in ADMISSION_RULES:
        try:
            rule(request)
        except errors.PlatformRuleError as refusal:
            result.refusals.append(refusal)
            result.verdicts.append(Verdict(refusal.code, accepted=False, message=refusal.message, field=refusal.field))
        else:
            result.verdicts.append(Verdict(error_class.code, accepted=True))
    return result
