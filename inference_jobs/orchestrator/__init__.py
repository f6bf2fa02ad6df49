"""Orchestrator backends: what turns a task's desired state into running pods, and reports what runs.

``AICP_ORCHESTRATOR`` picks one:

* ``kubernetes``: Deployments, Services, Secrets, Gateway listeners and HTTPRoutes through the API server
  (``orchestrator/kubernetes/``);
* ``none`` (the default until the embedded ``local`` backend lands): tasks are stored and admitted, nothing
  is deployed and no reconcile is scheduled.

The reconciler (``inference_jobs/reconciler.py``) is the only caller; backends take ``TaskSpec`` snapshots
(``spec.py``) and never touch the database.
"""

from __future__ import annotations

from django.conf import settings

KUBERNETES = "kubernetes"
NONE = "none"


def enabled() -> bool:
    return settings.AICP_ORCHESTRATOR != NONE


def get_backend():
    """The configured backend, or None when no orchestrator is configured."""
    if settings.AICP_ORCHESTRATOR == KUBERNETES:
        from compute_pools.choices import Vendor
        from compute_pools.models import AcceleratorType
        from inference_jobs.orchestrator.kubernetes.api import kube_api
        from inference_jobs.orchestrator.kubernetes.backend import KubernetesBackend

        accelerators = AcceleratorType.objects.exclude(vendor=Vendor.NONE).exclude(kubernetes_resource_name="")
        resources = sorted(set(accelerators.values_list("kubernetes_resource_name", flat=True)))
        return KubernetesBackend(kube_api(), cluster_settings(), resources)
    if settings.AICP_ORCHESTRATOR == NONE:
        return None
    raise ValueError(f"unknown AICP_ORCHESTRATOR {settings.AICP_ORCHESTRATOR!r} (kubernetes or none)")


def cluster_settings():
    from inference_jobs.orchestrator.kubernetes.render import ClusterSettings

    return ClusterSettings(
        installation=settings.AICP_INSTALLATION,
        namespace_prefix=settings.AICP_KUBE_NAMESPACE_PREFIX,
        gateway_namespace=settings.AICP_KUBE_GATEWAY_NAMESPACE,
        gateway_class=settings.AICP_KUBE_GATEWAY_CLASS,
        model_pvc=settings.AICP_KUBE_MODEL_PVC,
        serving_image=settings.AICP_SERVING_IMAGE,
    )
