"""Every write to an inference task: create (with admission), update, scale, stop, start, update image,
delete. Each records an event on the task and an entry in the audit log, in the write's transaction.

Writes that change what a task holds (task count, compute units, a port) take the locks of
``controlplane.locks`` in the platform → tenant → pool → gateway order before they count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from catalog.sizing import size_model_for_pool
from compute_pools.models import ComputePool
from controlplane import errors
from controlplane.locks import TASK_ADMISSION_LOCK, platform_lock
from gateways.models import Gateway
from gateways.services import gateway_port_allocate
from inference_jobs import orchestrator
from inference_jobs.admission import (
    AdmissionRequest,
    AdmissionResult,
    admission_evaluate,
    rule_pool_capacity,
    rule_pool_grant_share,
    rule_tenant_compute_quota,
)
from inference_jobs.choices import DesiredState, EventLevel, TaskStatus
from inference_jobs.ingest_tokens import ingest_token_issue
from inference_jobs.models import InferenceTask, TaskEvent
from inference_jobs.selectors import pool_usage, tenant_usage
from inference_jobs.tasks import reconcile_task
from tenancy.audit import audit_record, audit_snapshot
from tenancy.models import Tenant

# Spec fields a person may change after creation without re-admission.
MUTABLE_FIELDS = (
    "description",
    "async_batching",
    "reflow_enabled",
    "temperature",
    "top_p",
    "repetition_penalty",
    "sampling_policy",
    "system_prompt",
    "served_model_name",
    "ttft_slo_ms",
    "tpot_slo_ms",
)
_INGEST_TOKEN_FIELDS = ["ingest_token_salt", "ingest_token_digest", "ingest_token_rotated_at"]
# Fields whose values the model's validators check; relations are checked by admission.
_RELATION_FIELDS = ("tenant", "model", "compute_pool", "gateway", "runtime_image_version", "created_by")


def task_admission_request(
    *, tenant, name, model, mode, compute_pool, gateway, compute_units_per_instance=None, instances=1
) -> AdmissionRequest:
    """The request to admit, with compute units per instance defaulted from the sizing advisor."""
    if compute_units_per_instance is None:
        compute_units_per_instance = size_model_for_pool(model, compute_pool).recommended
    return AdmissionRequest(
        tenant=tenant,
        name=name,
        model=model,
        mode=mode,
        compute_pool=compute_pool,
        gateway=gateway,
        compute_units_per_instance=compute_units_per_instance,
        instances=instances,
    )


@dataclass(frozen=True)
class DryRun:
    request: AdmissionRequest
    result: AdmissionResult


def task_dry_run(**fields: Any) -> DryRun:
    """Would this task be accepted? Every rule's verdict, nothing created, no lock taken."""
    request = task_admission_request(**_admission_fields(fields))
    return DryRun(request=request, result=admission_evaluate(request))


def _admission_fields(fields: dict[str, Any]) -> dict[str, Any]:
    keys = ("tenant", "name", "model", "mode", "compute_pool", "gateway", "compute_units_per_instance", "instances")
    return {key: fields[key] for key in keys if key in fields}


def _event(task: InferenceTask, reason: str, message: str, *, actor=None, level: str = EventLevel.INFO) -> None:
    TaskEvent.objects.create(task=task, reason=reason, message=message, actor=actor, level=level)


def reconcile_after_commit(task_id: int) -> None:
    """Ask the reconciler to converge the task once this write has committed (nothing without an orchestrator)."""
    if not orchestrator.enabled():
        return
    transaction.on_commit(lambda: reconcile_task.delay(task_id))


def reconcile_tenant_after_commit(tenant_id: int) -> None:
    """The tenant's keys or quotas changed: every task of it re-renders (its adapter config, its namespace quota)."""
    if not orchestrator.enabled():
        return

    def schedule() -> None:
        for task_id in InferenceTask.objects.filter(tenant_id=tenant_id).values_list("pk", flat=True):
            reconcile_task.delay(task_id)

    transaction.on_commit(schedule)


def _locked(task: InferenceTask) -> InferenceTask:
    return InferenceTask.objects.select_for_update().get(pk=task.pk)


def _ensure_not_deleted(task: InferenceTask, action: str) -> None:
    if task.desired_state == DesiredState.DELETED:
        raise errors.TaskStateError(f"Task '{task.name}' is being deleted; it cannot {action}.")


def task_create(*, actor, tenant: Tenant, **fields: Any) -> InferenceTask:
    """Admit and create a task; it starts ``pending`` with its port allocated and its image version pinned.

    The platform admission lock serialises creates (rules 1 and 3); the tenant, pool and gateway row locks
    keep quota, capacity and port counts exact against concurrent scale, start and admin edits.
    """
    with transaction.atomic():
        platform_lock(TASK_ADMISSION_LOCK)
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        pool = (
            ComputePool.objects.select_for_update(of=("self",))
            .select_related("accelerator_type")
            .get(pk=fields["compute_pool"].pk)
        )
        gateway = Gateway.objects.select_for_update().get(pk=fields["gateway"].pk)
        request = task_admission_request(
            **{**_admission_fields(fields), "tenant": tenant, "compute_pool": pool, "gateway": gateway}
        )
        result = admission_evaluate(request)
        if not result.accepted:
            raise result.refusals[0]

        spec = {key: fields[key] for key in MUTABLE_FIELDS if key in fields}
        task = InferenceTask(
            tenant=tenant,
            name=request.name,
            model=request.model,
            mode=request.mode,
            compute_pool=pool,
            gateway=gateway,
            compute_units_per_instance=request.compute_units_per_instance,
            instances=request.instances,
            runtime_image_version=request.runtime_image_version,
            created_by=actor,
            **spec,
        )
        task.clean_fields(exclude=_RELATION_FIELDS)
        try:
            with transaction.atomic():
                task.save()
        except IntegrityError as exc:  # the database's unique constraint, should a writer bypass the lock
            if "task_unique_name_per_tenant" not in str(exc):
                raise
            raise errors.TaskNameTakenError(f"Tenant '{tenant.slug}' already has a task named '{task.name}'.") from exc
        ingest_token_issue(task)
        task.save(update_fields=_INGEST_TOKEN_FIELDS)
        port = gateway_port_allocate(gateway=gateway, task=task)
        _event(
            task,
            "Created",
            f"Admitted on pool {pool.slug} with {task.compute_units} compute units; "
            f"port {port.port} on gateway {gateway.slug}; runtime image {request.runtime_image_version}.",
            actor=actor,
        )
        audit_record(actor=actor, action="task.create", obj=task, tenant=tenant, after=audit_snapshot(task))
        reconcile_after_commit(task.pk)
    return task


def _save_spec_change(task: InferenceTask, *, actor, action: str, before: dict, reason: str, message: str) -> None:
    task.generation += 1
    task.save()
    _event(task, reason, message, actor=actor)
    reconcile_after_commit(task.pk)
    audit_record(actor=actor, action=action, obj=task, tenant=task.tenant, before=before, after=audit_snapshot(task))


def task_update(*, actor, task: InferenceTask, **fields: Any) -> InferenceTask:
    """Change the sampling policy, prompt, names, reflow or SLOs. These never change what the task holds."""
    with transaction.atomic():
        task = _locked(task)
        _ensure_not_deleted(task, "be changed")
        before = audit_snapshot(task)
        changed = [key for key in MUTABLE_FIELDS if key in fields and getattr(task, key) != fields[key]]
        if not changed:
            return task
        for key in changed:
            setattr(task, key, fields[key])
        task.clean_fields(exclude=_RELATION_FIELDS)
        _save_spec_change(
            task,
            actor=actor,
            action="task.update",
            before=before,
            reason="Updated",
            message=f"Changed {', '.join(changed)}.",
        )
    return task


def task_ingest_token_rotate(*, actor, task: InferenceTask) -> str:
    """Replace the task's ingest token and return the new one (shown once). The old token is refused from
    the commit on; the reconcile that follows hands the new one to the task's adapter (which restarts)."""
    with transaction.atomic():
        task = _locked(task)
        _ensure_not_deleted(task, "get a new ingest token")
        token = ingest_token_issue(task)
        task.save(update_fields=[*_INGEST_TOKEN_FIELDS, "updated_at"])
        _event(
            task, "IngestTokenRotated", "A new ingest token was issued; the previous one no longer works.", actor=actor
        )
        audit_record(actor=actor, action="task.rotate_ingest_token", obj=task, tenant=task.tenant)
        reconcile_after_commit(task.pk)
    return token


def _check_compute(task: InferenceTask, *, compute_units_per_instance: int, instances: int) -> None:
    """Quota, capacity and grant share for ``task`` holding the given compute, counting every other task.
    The caller holds the tenant and pool row locks."""
    request = AdmissionRequest(
        tenant=task.tenant,
        name=task.name,
        model=task.model,
        mode=task.mode,
        compute_pool=task.compute_pool,
        gateway=task.gateway,
        compute_units_per_instance=compute_units_per_instance,
        instances=instances,
    )
    request.tenant_usage = tenant_usage(task.tenant, exclude_task_id=task.pk)
    request.pool_usage = pool_usage(task.compute_pool, task.tenant, exclude_task_id=task.pk)
    for rule in (rule_tenant_compute_quota, rule_pool_capacity, rule_pool_grant_share):
        rule(request)


def _lock_compute_of(task: InferenceTask) -> InferenceTask:
    """Lock the tenant and pool rows (in admission order), then the task; return the fresh task.

    ``no_key``: FOR NO KEY UPDATE serialises the counting rules as FOR UPDATE does, but lets a request that holds
    this task's lock insert rows naming the tenant (an audit entry takes a FOR KEY SHARE lock on it); with FOR
    UPDATE, a scale waiting for the task and a rotate or stop holding it deadlocked (found by the API fuzz)."""
    Tenant.objects.select_for_update(no_key=True).filter(pk=task.tenant_id).first()
    ComputePool.objects.select_for_update(no_key=True).filter(pk=task.compute_pool_id).first()
    return (
        InferenceTask.objects.select_for_update(of=("self",))
        .select_related("tenant", "compute_pool", "model")
        .get(pk=task.pk)
    )


def task_scale(
    *, actor, task: InferenceTask, instances: int, compute_units_per_instance: int | None = None
) -> InferenceTask:
    with transaction.atomic():
        task = _lock_compute_of(task)
        _ensure_not_deleted(task, "be scaled")
        units = compute_units_per_instance or task.compute_units_per_instance
        if (instances, units) == (task.instances, task.compute_units_per_instance):
            return task
        if task.desired_state == DesiredState.RUNNING:
            _check_compute(task, compute_units_per_instance=units, instances=instances)
        before = audit_snapshot(task)
        task.instances, task.compute_units_per_instance = instances, units
        task.clean_fields(exclude=_RELATION_FIELDS)
        _save_spec_change(
            task,
            actor=actor,
            action="task.scale",
            before=before,
            reason="Scaled",
            message=f"Scaled to {instances} instance(s) of {units} compute unit(s).",
        )
    return task


def task_stop(*, actor, task: InferenceTask) -> InferenceTask:
    """Scale to zero and give back the compute units; the port stays with the task."""
    with transaction.atomic():
        task = _locked(task)
        _ensure_not_deleted(task, "be stopped")
        if task.desired_state == DesiredState.STOPPED:
            raise errors.TaskStateError(f"Task '{task.name}' is already stopped.")
        before = audit_snapshot(task)
        task.desired_state, task.status, task.status_message = DesiredState.STOPPED, TaskStatus.STOPPED, ""
        _save_spec_change(
            task,
            actor=actor,
            action="task.stop",
            before=before,
            reason="Stopped",
            message="Stopped; compute released, port kept.",
        )
    return task


def task_start(*, actor, task: InferenceTask) -> InferenceTask:
    """Deploy a stopped (or failed) task again, if its compute still fits."""
    with transaction.atomic():
        task = _lock_compute_of(task)
        _ensure_not_deleted(task, "be started")
        if task.desired_state == DesiredState.RUNNING and task.status != TaskStatus.FAILED:
            raise errors.TaskStateError(f"Task '{task.name}' is already {task.get_status_display().lower()}.")
        if task.desired_state == DesiredState.STOPPED:
            _check_compute(task, compute_units_per_instance=task.compute_units_per_instance, instances=task.instances)
        before = audit_snapshot(task)
        task.desired_state, task.status, task.status_message = DesiredState.RUNNING, TaskStatus.DEPLOYING, ""
        _save_spec_change(task, actor=actor, action="task.start", before=before, reason="Started", message="Deploying.")
    return task


def task_update_image(*, actor, task: InferenceTask) -> InferenceTask:
    """Move the task to the newest version of its runtime image (SPEC rule 6: only when someone asks)."""
    with transaction.atomic():
        task = (
            InferenceTask.objects.select_for_update(of=("self",))
            .select_related("runtime_image_version__image")
            .get(pk=task.pk)
        )
        _ensure_not_deleted(task, "update its runtime image")
        image = task.runtime_image_version.image
        newest = image.versions.order_by("-published_at", "-id").first()
        if (
            newest is None
            or newest.pk == task.runtime_image_version_id
            or (newest.published_at <= task.runtime_image_version.published_at)
        ):
            raise errors.RuntimeImageUpToDateError(
                f"Task '{task.name}' already runs the newest version of {image.slug} "
                f"({task.runtime_image_version.version})."
            )
        before = audit_snapshot(task)
        previous = task.runtime_image_version.version
        task.runtime_image_version = newest
        if task.desired_state == DesiredState.RUNNING:
            task.status, task.status_message = TaskStatus.UPDATING, ""
        _save_spec_change(
            task,
            actor=actor,
            action="task.update_image",
            before=before,
            reason="ImageUpdateRequested",
            message=f"Runtime image {image.slug} {previous} → {newest.version}.",
        )
    return task


def task_delete(*, actor, task: InferenceTask) -> InferenceTask:
    """Ask for deletion. The task stays (``deleting``, holding its port and compute) until the reconciler
    has removed its cluster objects and calls ``task_delete_finalize``. Asking twice changes nothing."""
    with transaction.atomic():
        task = _locked(task)
        if task.desired_state == DesiredState.DELETED:
            return task
        before = audit_snapshot(task)
        task.desired_state, task.status, task.status_message = DesiredState.DELETED, TaskStatus.DELETING, ""
        _save_spec_change(
            task, actor=actor, action="task.delete", before=before, reason="DeletionRequested", message="Deleting."
        )
    return task


def task_delete_finalize(*, task: InferenceTask) -> None:
    """The task is gone from the cluster: remove its row, which frees its port and its compute units."""
    with transaction.atomic():
        task = InferenceTask.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=task.pk)
        if task.desired_state != DesiredState.DELETED:
            raise errors.TaskStateError(f"Task '{task.name}' was not asked to be deleted.")
        audit_record(
            actor=None, action="task.delete_finalize", obj=task, tenant=task.tenant, before=audit_snapshot(task)
        )
        task.delete()
