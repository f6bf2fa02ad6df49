"""The reconciler: converge the orchestrator to the database's desired state and record what it saw.

``reconcile_task(task_id)`` handles one task; ``reconcile_sweep()`` handles all of them and removes orphans.
Both are idempotent and level-based (they look at the whole state each time, not at what changed), so running
them twice, late, or concurrently is harmless. Celery runs them (``inference_jobs/tasks.py``): after every
write (``transaction.on_commit``) and periodically.

Failures come in three kinds (``orchestrator/kubernetes/api.py``): temporary ones propagate, and the Celery
task retries with backoff; permanent ones mark the task ``failed`` with the API server's message; anything
else propagates too, and is recorded on the task once the retries are used up (``record_error``).
"""

from __future__ import annotations

import logging

from django.db import transaction

from controlplane.locks import try_lock
from inference_jobs import orchestrator
from inference_jobs.choices import DesiredState, EventLevel, TaskStatus
from inference_jobs.models import InferenceTask, TaskEvent
from inference_jobs.orchestrator.kubernetes.api import PermanentError
from inference_jobs.orchestrator.results import Observation
from inference_jobs.orchestrator.spec import TaskSpec, task_specs
from tenancy.models import Tenant

log = logging.getLogger(__name__)

SWEEP_LOCK = "reconcile-sweep"
_FAILED_LEVEL = {TaskStatus.FAILED: EventLevel.ERROR}


def reconcile_task(task_id: int) -> str:
    """Converge one task; returns what happened (``running``, ``failed``, ``deleted``, ``gone``, ...)."""
    backend = orchestrator.get_backend()
    if backend is None:
        return "disabled"
    specs = task_specs([task_id])
    if not specs:
        return "gone"
    spec = specs[0]
    if spec.deleting:
        if backend.remove(spec):
            _finalize(spec.id)
            return "deleted"
        return "deleting"
    try:
        observation = backend.apply(spec)
    except PermanentError as exc:
        observation = Observation(TaskStatus.FAILED, "ApplyFailed", f"The cluster refused the task's objects: {exc}")
    return record(spec, observation)


def record(spec: TaskSpec, observation: Observation) -> str:
    """Store what was observed, unless a newer write has changed the task since it was read (its own
    reconcile, scheduled by that write, will record). An event is added when the status or cause changes."""
    with transaction.atomic():
        task = InferenceTask.objects.select_for_update(of=("self",)).filter(pk=spec.id).first()
        if task is None or task.generation != spec.generation or task.desired_state == DesiredState.DELETED:
            return "superseded"
        status = observation.status
        if status == TaskStatus.DEPLOYING and task.status == TaskStatus.UPDATING:
            status = TaskStatus.UPDATING  # a rolling image update in progress
        new = (status, observation.message, observation.ready)
        if (task.status, task.status_message, task.ready_instances, task.observed_generation) == (
            *new,
            spec.generation,
        ):
            return status
        changed = (task.status, task.status_message) != (status, observation.message)
        status_changed = task.status != status or (status == TaskStatus.FAILED and changed)
        task.status, task.status_message, task.ready_instances = new
        task.observed_generation = spec.generation
        task.save(update_fields=["status", "status_message", "ready_instances", "observed_generation", "updated_at"])
        if status_changed:
            level = _FAILED_LEVEL.get(status, EventLevel.INFO)
            TaskEvent.objects.create(task=task, reason=observation.reason, message=observation.message, level=level)
    return status


def record_error(task_id: int, message: str) -> None:
    """A reconcile kept failing for an unexpected reason: show it on the task (the sweep keeps trying)."""
    with transaction.atomic():
        task = InferenceTask.objects.select_for_update(of=("self",)).filter(pk=task_id).first()
        if task is None or task.desired_state == DesiredState.DELETED:
            return
        if (task.status, task.status_message) != (TaskStatus.FAILED, message):
            task.status, task.status_message = TaskStatus.FAILED, message
            task.save(update_fields=["status", "status_message", "updated_at"])
            TaskEvent.objects.create(task=task, reason="ReconcileError", message=message, level=EventLevel.ERROR)


def _finalize(task_id: int) -> None:
    from inference_jobs.services import task_delete_finalize

    task = InferenceTask.objects.filter(pk=task_id).first()
    if task is not None:
        task_delete_finalize(task=task)


def reconcile_sweep() -> dict | None:
    """Converge every task and delete orphans; None when another sweep is running (or no orchestrator)."""
    backend = orchestrator.get_backend()
    if backend is None:
        return None
    with try_lock(SWEEP_LOCK) as got:
        if not got:
            log.info("reconcile sweep skipped: another sweep is running")
            return None
        specs = task_specs()
        result = backend.sweep(specs, set(Tenant.objects.values_list("slug", flat=True)))
        by_id = {spec.id: spec for spec in specs}
        for task_id, observation in result.observations.items():
            record(by_id[task_id], observation)
        for task_id, error in result.errors.items():
            if isinstance(error, PermanentError):
                message = f"The cluster refused the task's objects: {error}"
                record(by_id[task_id], Observation(TaskStatus.FAILED, "ApplyFailed", message))
            else:
                log.warning("task %s did not converge in this sweep: %s", task_id, error)
        for task_id in result.removed:
            _finalize(task_id)
        return {
            "tasks": len(specs),
            "errors": len(result.errors),
            "removed": len(result.removed),
            "orphans_deleted": result.orphans_deleted,
        }
