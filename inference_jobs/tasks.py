"""Celery tasks of inference tasks (thin: the work is in ``reconciler.py``)."""

from __future__ import annotations

import logging

from celery import shared_task

from inference_jobs import orchestrator, reconciler
from inference_jobs.choices import TaskStatus
from inference_jobs.orchestrator.kubernetes.api import TemporaryError

log = logging.getLogger(__name__)

MAX_RETRIES = 6  # backoff 1, 2, 4, 8, 16, 32 s; then the periodic sweep takes over
UNEXPECTED_RETRIES = 2
MAX_FOLLOW_UPS = 90  # ~3 minutes of looking again every 2 s while a task converges; then the sweep carries on
CONVERGING = {TaskStatus.DEPLOYING, TaskStatus.UPDATING, "deleting"}  # what reconcile_task returns meanwhile


def backoff(retries: int) -> int:
    return min(60, 2**retries)


@shared_task(bind=True, name="inference_jobs.tasks.reconcile_task", max_retries=MAX_RETRIES)
def reconcile_task(self, task_id: int, follow_ups: int = 0) -> str:
    try:
        result = reconciler.reconcile_task(task_id)
    except TemporaryError as exc:
        if self.request.retries >= self.max_retries:
            log.warning("task %s: giving up this reconcile after %s retries: %s", task_id, self.request.retries, exc)
            return "retrying-in-sweep"
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    except Exception as exc:
        if self.request.retries >= UNEXPECTED_RETRIES:
            log.exception("task %s: reconcile failed", task_id)
            reconciler.record_error(task_id, f"Unexpected error while deploying: {type(exc).__name__}: {exc}")
            return "error"
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    _follow_up(task_id, result, follow_ups, eager=bool(self.request.is_eager))
    return result


def _follow_up(task_id: int, result: str, follow_ups: int, *, eager: bool) -> None:
    """Level-based polling: while the task is still converging, look at it again shortly instead of waiting for
    the sweep, a bounded number of times. Not when run eagerly, where a countdown would not wait."""
    delay = orchestrator.follow_up_s()
    if delay is None or eager or result not in CONVERGING or follow_ups >= MAX_FOLLOW_UPS:
        return
    reconcile_task.apply_async(args=(task_id,), kwargs={"follow_ups": follow_ups + 1}, countdown=delay)


@shared_task(name="inference_jobs.tasks.reconcile_sweep")
def reconcile_sweep() -> dict | None:
    return reconciler.reconcile_sweep()
