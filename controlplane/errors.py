"""Every refusal of a platform rule, in one catalogue.

Services raise these; the API's exception handler and (later) the console's forms render them. Each has a
stable ``code`` that scripts may match on, a human ``message``, and the ``field`` of the create form it
concerns so that a form can show it next to that field. The numbers refer to SPEC.md, "Platform rules".
"""

from __future__ import annotations

from typing import Any, ClassVar


class PlatformRuleError(Exception):
    """A request that is well formed but that the platform's rules refuse."""

    code: ClassVar[str] = "platform_rule"
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if field is not None:
            self.field = field

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "field": self.field}


# Rule 1
class PlatformTaskLimitError(PlatformRuleError):
    code = "platform_task_limit"


# Rule 2
class GatewayPortsExhaustedError(PlatformRuleError):
    code = "gateway_ports_exhausted"
    field = "gateway"


# Rule 3
class TaskNameTakenError(PlatformRuleError):
    code = "task_name_taken"
    field = "name"


# Rule 4
class ModeNotSupportedByPoolError(PlatformRuleError):
    code = "mode_not_supported_by_pool"
    field = "mode"


# Rule 5
class NormalModeModelUnsupportedError(PlatformRuleError):
    code = "normal_mode_model_unsupported"
    field = "model"


# Rule 6 is kept by construction: a task pins its runtime image version and only task_update_image moves it.
class RuntimeImageUpToDateError(PlatformRuleError):
    code = "runtime_image_up_to_date"


class RuntimeImageUnavailableError(PlatformRuleError):
    code = "runtime_image_unavailable"
    field = "mode"


class RuntimeNotInstalledError(PlatformRuleError):
    """The orchestrator has no runtime for the mode (the local one without vLLM's CPU runtime)."""

    code = "runtime_not_installed"
    field = "mode"


# Rule 7
class TenantTaskQuotaError(PlatformRuleError):
    code = "tenant_quota_tasks"


class TenantComputeQuotaError(PlatformRuleError):
    code = "tenant_quota_compute_units"
    field = "compute_units_per_instance"


# Compute pools: grants and capacity
class PoolNotGrantedError(PlatformRuleError):
    code = "pool_not_granted"
    field = "compute_pool"


class PoolCapacityExceededError(PlatformRuleError):
    code = "pool_capacity_exceeded"
    field = "compute_units_per_instance"


class PoolGrantShareExceededError(PlatformRuleError):
    code = "pool_grant_share_exceeded"
    field = "compute_units_per_instance"


class PoolCapacityBelowUseError(PlatformRuleError):
    code = "pool_capacity_below_use"
    field = "capacity_compute_units"


class PoolInUseError(PlatformRuleError):
    code = "pool_in_use"


class PoolGrantExistsError(PlatformRuleError):
    code = "pool_grant_exists"
    field = "tenant"


class PoolGrantInUseError(PlatformRuleError):
    """A grant cannot be withdrawn while the tenant still has tasks in the pool."""

    code = "pool_grant_in_use"


class PoolGrantShareBelowUseError(PlatformRuleError):
    code = "pool_grant_share_below_use"
    field = "max_compute_units"


class AcceleratorTypeInUseError(PlatformRuleError):
    code = "accelerator_type_in_use"


# Gateways
class GatewayInactiveError(PlatformRuleError):
    code = "gateway_inactive"
    field = "gateway"


class GatewayRangeExcludesAllocatedPortsError(PlatformRuleError):
    code = "gateway_range_excludes_allocated_ports"
    field = "port_range_start"


class GatewayInUseError(PlatformRuleError):
    code = "gateway_in_use"


# Models and runtime images
class ModelNotReadyError(PlatformRuleError):
    code = "model_not_ready"
    field = "model"


class ModelInUseError(PlatformRuleError):
    code = "model_in_use"


class ModelNameTakenError(PlatformRuleError):
    code = "model_name_taken"
    field = "name"


class ModelUploadError(PlatformRuleError):
    code = "model_upload_invalid"
    field = "files"


class RuntimeImageVersionTakenError(PlatformRuleError):
    code = "runtime_image_version_taken"
    field = "version"


class RuntimeImageInUseError(PlatformRuleError):
    """Tasks pin a version of the image: deleting it, or changing what its versions pull (repository, mode,
    vendor), would change those tasks without anyone asking (rule 6)."""

    code = "runtime_image_in_use"


# Task lifecycle
class TaskStateError(PlatformRuleError):
    """An action that the task's current state does not allow (start a running task, scale a deleting one)."""

    code = "task_state_conflict"


class SlugTakenError(PlatformRuleError):
    """Another object of the same kind (tenant, pool, gateway, image...) already has this id."""

    code = "slug_taken"
    field = "slug"


# Tenancy


class TenantQuotaBelowUseError(PlatformRuleError):
    code = "tenant_quota_below_use"


class TenantInUseError(PlatformRuleError):
    code = "tenant_in_use"


class MembershipExistsError(PlatformRuleError):
    code = "membership_exists"
    field = "user"


class LastTenantAdminError(PlatformRuleError):
    code = "last_tenant_admin"
    field = "role"


class UsernameTakenError(PlatformRuleError):
    code = "username_taken"
    field = "username"


class SelfLockoutError(PlatformRuleError):
    """A platform admin may not deactivate their own account or drop their own admin flag."""

    code = "self_lockout"


class CredentialExpiryError(PlatformRuleError):
    code = "credential_expiry_in_past"
    field = "expires_at"
