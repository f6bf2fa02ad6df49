"""Celery tasks of compute pools (thin: the work is in ``inventory.py``)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(name="compute_pools.tasks.node_inventory")
def node_inventory() -> dict[str, int] | None:
    """Periodic: a pool's capacity follows its nodes (only with the ``kubernetes`` orchestrator)."""
    if settings.AICP_ORCHESTRATOR != "kubernetes":
        return None
    from compute_pools.inventory import node_inventory as inventory
    from inference_jobs.orchestrator.kubernetes.api import kube_api

    return inventory(kube_api())
