"""Periodic jobs of telemetry and reflow (thin: the services do the work)."""

from __future__ import annotations

import logging

from celery import shared_task

from telemetry.services import metrics_purge

log = logging.getLogger(__name__)


@shared_task(name="telemetry.tasks.retention_purge")
def retention_purge() -> dict[str, int]:
    """Delete raw request metrics and roll-ups past their retention, and each tenant's expired reflow records."""
    from reflow.services import reflow_purge

    deleted = {**metrics_purge(), "reflow": reflow_purge()}
    log.info("retention purge: %s", deleted)
    return deleted
