"""Node inventory: a pool's capacity follows the cluster.

For every pool with a node selector, list the nodes it selects and add up the allocatable cards of the pool's
accelerator (``status.allocatable[<resource name>]``) over the nodes that are Ready and schedulable. The nodes
are recorded on the pool (``observed_nodes``) and the total becomes its ``capacity_compute_units``, under the
pool's row lock (admission reads capacity under the same lock). A pool without a selector, or whose selector
matches no card, keeps the capacity an admin gave it: an empty answer is more likely a mislabelled cluster
than a pool that really shrank to nothing, and the recorded nodes show it.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from compute_pools.models import ComputePool
from inference_jobs.orchestrator.kubernetes.api import KubeAPI

log = logging.getLogger(__name__)


def _cards(node: dict, resource: str) -> int:
    value = str(((node.get("status") or {}).get("allocatable") or {}).get(resource, "0"))
    try:
        return int(value)
    except ValueError:  # device plugins report whole numbers; anything else counts as none
        return 0


def _ready(node: dict) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def node_inventory(api: KubeAPI) -> dict[str, int]:
    """Record every pool's nodes and capacity; returns pool slug → cards found."""
    found: dict[str, int] = {}
    for pool in ComputePool.objects.select_related("accelerator_type").order_by("pk"):
        resource = pool.accelerator_type.kubernetes_resource_name
        if not pool.node_selector or not resource:
            continue
        selector = ",".join(f"{key}={value}" for key, value in sorted(pool.node_selector.items()))
        nodes = [
            {"name": node["metadata"]["name"], "allocatable": _cards(node, resource), "ready": _ready(node)}
            for node in api.list("Node", label_selector=selector)
        ]
        total = sum(node["allocatable"] for node in nodes if node["ready"])
        found[pool.slug] = total
        with transaction.atomic():
            locked = ComputePool.objects.select_for_update().get(pk=pool.pk)
            locked.observed_nodes, locked.inventory_at = nodes, timezone.now()
            fields = ["observed_nodes", "inventory_at", "updated_at"]
            if total and total != locked.capacity_compute_units:
                log.info("pool %s: capacity %s → %s cards", pool.slug, locked.capacity_compute_units, total)
                locked.capacity_compute_units = total
                fields.append("capacity_compute_units")
            locked.save(update_fields=fields)
    return found
