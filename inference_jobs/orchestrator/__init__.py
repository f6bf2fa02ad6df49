"""Orchestrator backends: what turns a task's desired state into running pods, and reports what runs.

``AICP_ORCHESTRATOR`` picks one:

* ``local`` (the default, the embedded one): each instance is an engine process and an adapter process on this
  machine, the gateway's port on 127.0.0.1 (``orchestrator/local/``, ``docs/local.md``);
* ``kubernetes``: Deployments, Services, Secrets, Gateway listeners and HTTPRoutes through the API server
  (``orchestrator/kubernetes/``);
* ``none``: tasks are stored and admitted, nothing is deployed and no reconcile is scheduled (the test suite's
  default).

The reconciler (``inference_jobs/reconciler.py``) is the only caller; backends take ``TaskSpec`` snapshots
(``spec.py``) and never touch the database.
"""

from __future__ import annotations

from django.conf import settings

KUBERNETES = "kubernetes"
LOCAL = "local"
NONE = "none"
# How soon the Celery reconcile of a task that is still converging looks again. Local processes start in
# seconds, so a short poll shows ``running`` as soon as they answer; a cluster rollout takes minutes and
# polling 500 tasks every few seconds would load the API server, so Kubernetes is left to its sweep.
FOLLOW_UP_S = {LOCAL: 2.0}


def enabled() -> bool:
    return settings.AICP_ORCHESTRATOR != NONE


def follow_up_s() -> float | None:
    """Seconds after which a task that is still deploying is reconciled again; None: leave it to the sweep."""
    return FOLLOW_UP_S.get(settings.AICP_ORCHESTRATOR)


def get_backend():
    """The configured backend, or None when no orchestrator is configured."""
    if settings.AICP_ORCHESTRATOR == LOCAL:
        from inference_jobs.orchestrator.local.backend import LocalBackend

        return LocalBackend(local_settings())
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
    raise ValueError(f"unknown AICP_ORCHESTRATOR {settings.AICP_ORCHESTRATOR!r} (local, kubernetes or none)")


def runtime_missing(mode: str) -> str | None:
    """Why the configured orchestrator cannot run tasks of ``mode`` at all, or None. Admission asks before a task
    is created (``admission.rule_runtime_installed``), so a missing runtime is a verdict of the dry run and the
    form, not a task that fails later. Only the local orchestrator lacks one: vLLM's CPU runtime is an install of
    its own; a cluster runs each mode from its runtime image."""
    if settings.AICP_ORCHESTRATOR != LOCAL:
        return None
    from compute_pools.choices import Mode
    from inference_jobs.orchestrator.local.backend import vllm_runtime_missing

    return vllm_runtime_missing(settings.AICP_LOCAL_VLLM_PYTHON) if mode == Mode.HIGH_PERFORMANCE else None


def cluster_settings():
    from inference_jobs.orchestrator.kubernetes.render import ClusterSettings

    return ClusterSettings(
        installation=settings.AICP_INSTALLATION,
        namespace_prefix=settings.AICP_KUBE_NAMESPACE_PREFIX,
        gateway_namespace=settings.AICP_KUBE_GATEWAY_NAMESPACE,
        gateway_class=settings.AICP_KUBE_GATEWAY_CLASS,
        model_pvc=settings.AICP_KUBE_MODEL_PVC,
    )


def local_settings():
    from inference_jobs.orchestrator.local.backend import LocalSettings

    return LocalSettings(
        run_dir=settings.AICP_LOCAL_RUN_DIR,
        storage_root=settings.AICP_STORAGE_ROOT,
        engine_threads=settings.AICP_LOCAL_ENGINE_THREADS,
        vllm_python=settings.AICP_LOCAL_VLLM_PYTHON,
        working_dir=settings.BASE_DIR,
    )
