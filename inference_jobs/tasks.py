"""Celery tasks of inference tasks (thin: the work is in ``reconciler.py``)."""

from __future__ import annotations

import logging

from celery import shared_task

from inference_jobs import reconciler
from inference_jobs.orchestrator.kubernetes.api import TemporaryError

log = logging.getLogger(__name__)

MAX_RETRIES = 6  # backoff 1, 2, 4, 8, 16, 32 s; then the periodic sweep takes over
UNEXPECTED_RETRIES = 2


def backoff(retries: int) -> int:
    return min(60, 2**retries)


@shared_task(bind=True, name="inference_jobs.tasks.reconcile_task", max_retries=MAX_RETRIES)
def reconcile_task(self, task_id: int) -> str:
    try:
        return reconciler.reconcile_task(task_id)
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


@shared_task(name="inference_jobs.tasks.reconcile_sweep")
def reconcile_sweep() -> dict | None:
    return reconciler.reconcile_sweep()
