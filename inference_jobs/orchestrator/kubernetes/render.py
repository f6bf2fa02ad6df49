"""The Kubernetes objects a task (and its tenant) should have: pure functions from specs to manifests.

Nothing here talks to a cluster or the database, so the same spec always renders the same objects (and the
same ``aicp.io/spec-hash``), which is what lets the reconciler skip every write when nothing drifted.

Per tenant (namespace ``<prefix>-<tenant slug>``): the Namespace, a ResourceQuota capping the accelerator
resources at the tenant's compute quota, and a NetworkPolicy admitting traffic only from the gateways'
namespace. Per task (names ``task-<id>``): a Deployment (engine + adapter), a Service, a Secret with the
adapter's config, an HTTPRoute, and a listener on the gateway's Gateway object.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from inference_jobs.orchestrator.adapter import adapter_config as neutral_adapter_config
from inference_jobs.orchestrator.engine import EngineHost
from inference_jobs.orchestrator.engine import engine_command as render_engine_command
from inference_jobs.orchestrator.spec import TaskSpec, TenantSpec

GROUP = "aicp.io"
LABEL_INSTALLATION = f"{GROUP}/installation"
LABEL_TENANT = f"{GROUP}/tenant"
LABEL_TASK = f"{GROUP}/task"
SPEC_HASH = f"{GROUP}/spec-hash"
CONFIG_HASH = f"{GROUP}/config-hash"
GATEWAY_API = "gateway.networking.k8s.io/v1"

ENGINE_PORT = 8000
ADAPTER_PORT = 8080
MODEL_MOUNT = "/models"
CONFIG_MOUNT = "/etc/aicp"
SPOOL_MOUNT = "/var/lib/aicp"


@dataclass(frozen=True)
class ClusterSettings:
    """Where and how this installation deploys (``AICP_KUBE_*`` settings)."""

    installation: str = "aicp"
    namespace_prefix: str = "aicp"
    gateway_namespace: str = "aicp-gateways"
    gateway_class: str = "aicp"
    model_pvc: str = "aicp-models"


# ---- names ----------------------------------------------------------------------------------------------


def _dns_label(name: str) -> str:
    """``name`` if it is a valid DNS label, else a shortened one with a hash suffix (still deterministic)."""
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-')}-{digest}"


def namespace_name(tenant_slug: str, cluster: ClusterSettings) -> str:
    return _dns_label(f"{cluster.namespace_prefix}-{tenant_slug}".replace("_", "-"))


def task_object_name(task_id: int) -> str:
    """Deployment, Service and HTTPRoute of the task; also its listener's name on the Gateway."""
    return f"task-{task_id}"


def secret_name(task_id: int) -> str:
    return f"task-{task_id}-adapter"


def task_object_names(task_id: int) -> list[tuple[str, str]]:
    """(kind, name) of every namespaced object of a task, in deletion order (the route first)."""
    name = task_object_name(task_id)
    return [("HTTPRoute", name), ("Service", name), ("Deployment", name), ("Secret", secret_name(task_id))]


# ---- helpers ----------------------------------------------------------------------------------------------


def spec_hash(obj: dict) -> str:
    """A hash of everything we set on an object (its own hash annotation excluded)."""
    meta = dict(obj.get("metadata", {}))
    annotations = {k: v for k, v in meta.get("annotations", {}).items() if k != SPEC_HASH}
    meta["annotations"] = annotations
    canonical = json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _stamped(obj: dict) -> dict:
    obj["metadata"].setdefault("annotations", {})[SPEC_HASH] = spec_hash(obj)
    return obj


def tenant_labels(tenant: TenantSpec, cluster: ClusterSettings) -> dict[str, str]:
    return {LABEL_INSTALLATION: cluster.installation, LABEL_TENANT: tenant.slug}


def task_labels(spec: TaskSpec, cluster: ClusterSettings) -> dict[str, str]:
    return {**tenant_labels(spec.tenant, cluster), LABEL_TASK: str(spec.id)}


def _tenant_meta(tenant: TenantSpec, cluster: ClusterSettings, name: str) -> dict:
    return {"name": name, "namespace": namespace_name(tenant.slug, cluster), "labels": tenant_labels(tenant, cluster)}


def _task_meta(spec: TaskSpec, cluster: ClusterSettings, name: str) -> dict:
    return {**_tenant_meta(spec.tenant, cluster, name), "labels": task_labels(spec, cluster)}


def _selector(spec: TaskSpec, cluster: ClusterSettings) -> dict[str, str]:
    return {LABEL_INSTALLATION: cluster.installation, LABEL_TASK: str(spec.id)}


# ---- per tenant -----------------------------------------------------------------------------------------


def render_namespace(tenant: TenantSpec, cluster: ClusterSettings) -> dict:
    meta = {"name": namespace_name(tenant.slug, cluster), "labels": tenant_labels(tenant, cluster)}
    return _stamped({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})


def render_resource_quota(tenant: TenantSpec, resource_names: list[str], cluster: ClusterSettings) -> dict:
    """Caps every accelerator resource of the platform at the tenant's compute quota (one card = one unit)."""
    hard = {f"requests.{name}": str(tenant.max_compute_units) for name in sorted(set(resource_names)) if name}
    meta = _tenant_meta(tenant, cluster, "aicp-accelerators")
    return _stamped({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta, "spec": {"hard": hard}})


def render_network_policy(tenant: TenantSpec, cluster: ClusterSettings) -> dict:
    """Every pod of the tenant takes traffic only from the gateways' namespace (not from other tenants)."""
    meta = _tenant_meta(tenant, cluster, "aicp-gateway-only")
    source = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cluster.gateway_namespace}}}
    spec = {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [source]}]}
    return _stamped({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta, "spec": spec})


def render_tenant(tenant: TenantSpec, resource_names: list[str], cluster: ClusterSettings) -> list[dict]:
    return [
        render_namespace(tenant, cluster),
        render_resource_quota(tenant, resource_names, cluster),
        render_network_policy(tenant, cluster),
    ]


# ---- per task ---------------------------------------------------------------------------------------------


def adapter_config(spec: TaskSpec) -> dict:
    """The adapter's config file, its spool on the pod's spool volume."""
    return neutral_adapter_config(spec, SPOOL_MOUNT)


def render_secret(spec: TaskSpec, cluster: ClusterSettings) -> dict:
    body = json.dumps(adapter_config(spec), sort_keys=True, indent=2).encode()
    meta = _task_meta(spec, cluster, secret_name(spec.id))
    data = {"adapter.json": base64.b64encode(body).decode()}
    return _stamped({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": data})


def engine_command(spec: TaskSpec) -> list[str]:
    """The engine container's command line (``orchestrator/engine.py``): the model on its volume, the engine on
    the pod's loopback behind the adapter; ``vllm`` is on the vLLM image's PATH."""
    return render_engine_command(spec, EngineHost(model=f"{MODEL_MOUNT}/model", port=ENGINE_PORT))


def _http_probe(path: str, port: int, *, initial: int, period: int, failures: int) -> dict:
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": initial,
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def render_deployment(spec: TaskSpec, cluster: ClusterSettings, config_hash: str) -> dict:
    labels = task_labels(spec, cluster)
    limits = {spec.resource_name: str(spec.compute_units_per_instance)} if spec.resource_name else {}
    model_mount = {"name": "model", "mountPath": f"{MODEL_MOUNT}/model", "subPath": spec.model_path, "readOnly": True}
    engine = {
        "name": "engine",
        "image": spec.image,
        "command": engine_command(spec),
        "ports": [{"name": "engine", "containerPort": ENGINE_PORT, "protocol": "TCP"}],
        "resources": {"limits": limits, "requests": dict(limits)},
        "volumeMounts": [model_mount],
        # Loading weights takes minutes: readiness gates traffic, liveness only restarts a hung engine.
        "readinessProbe": _http_probe("/health", ENGINE_PORT, initial=10, period=10, failures=3),
        "livenessProbe": _http_probe("/health", ENGINE_PORT, initial=600, period=20, failures=6),
    }
    adapter_command = ["python", "-m", "serving.adapter", "--config", f"{CONFIG_MOUNT}/adapter.json"]
    adapter_command += ["--upstream", f"http://127.0.0.1:{ENGINE_PORT}", "--host", "0.0.0.0"]
    adapter_command += ["--port", str(ADAPTER_PORT)]
    adapter = {
        "name": "adapter",
        "image": spec.image,  # every runtime image carries the adapter too (docker/runtime-*.Dockerfile)
        "command": adapter_command,
        "ports": [{"name": "http", "containerPort": ADAPTER_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "spool", "mountPath": SPOOL_MOUNT},
        ],
        "readinessProbe": _http_probe("/healthz", ADAPTER_PORT, initial=2, period=5, failures=3),
        "livenessProbe": _http_probe("/healthz", ADAPTER_PORT, initial=10, period=10, failures=3),
    }
    pod_spec = {
        "containers": [engine, adapter],
        "volumes": [
            {"name": "model", "persistentVolumeClaim": {"claimName": cluster.model_pvc, "readOnly": True}},
            {"name": "config", "secret": {"secretName": secret_name(spec.id)}},
            {"name": "spool", "emptyDir": {}},
        ],
        "automountServiceAccountToken": False,
    }
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod_spec["tolerations"] = list(spec.tolerations)
    template = {
        "metadata": {"labels": labels, "annotations": {CONFIG_HASH: config_hash}},  # a new config rolls the pods
        "spec": pod_spec,
    }
    meta = {
        **_task_meta(spec, cluster, task_object_name(spec.id)),
        "annotations": {f"{GROUP}/image-version": spec.image_version},
    }
    body = {
        "replicas": spec.instances,
        "selector": {"matchLabels": _selector(spec, cluster)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
        "template": template,
    }
    return _stamped({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": body})


def render_service(spec: TaskSpec, cluster: ClusterSettings) -> dict:
    meta = _task_meta(spec, cluster, task_object_name(spec.id))
    body = {
        "type": "ClusterIP",
        "selector": _selector(spec, cluster),
        "ports": [{"name": "http", "port": ADAPTER_PORT, "targetPort": "http", "protocol": "TCP"}],
    }
    return _stamped({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": body})


def render_listener(spec: TaskSpec, cluster: ClusterSettings) -> dict:
    """The task's entry on the gateway's Gateway object: its port, open to routes of its tenant's namespace."""
    namespace = namespace_name(spec.tenant.slug, cluster)
    return {
        "name": task_object_name(spec.id),
        "port": spec.port,
        "protocol": "HTTP",
        "allowedRoutes": {
            "namespaces": {"from": "Selector", "selector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
        },
    }


def render_gateway(gateway: str, listeners: list[dict], cluster: ClusterSettings) -> dict:
    """A gateway's Gateway object, for when it does not exist yet (its listeners are then managed one by one)."""
    meta = {
        "name": gateway,
        "namespace": cluster.gateway_namespace,
        "labels": {LABEL_INSTALLATION: cluster.installation, f"{GROUP}/gateway": gateway},
    }
    spec = {"gatewayClassName": cluster.gateway_class, "listeners": listeners}
    return {"apiVersion": GATEWAY_API, "kind": "Gateway", "metadata": meta, "spec": spec}


def render_http_route(spec: TaskSpec, cluster: ClusterSettings) -> dict:
    meta = _task_meta(spec, cluster, task_object_name(spec.id))
    parent = {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "namespace": cluster.gateway_namespace,
        "name": spec.gateway,
        "sectionName": task_object_name(spec.id),
        "port": spec.port,
    }
    backend = {"group": "", "kind": "Service", "name": task_object_name(spec.id), "port": ADAPTER_PORT, "weight": 1}
    rule = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [backend]}
    body = {"parentRefs": [parent], "rules": [rule]}
    return _stamped({"apiVersion": GATEWAY_API, "kind": "HTTPRoute", "metadata": meta, "spec": body})


def render_task(spec: TaskSpec, cluster: ClusterSettings) -> list[dict]:
    """The task's namespaced objects, in creation order (the Secret before the Deployment that mounts it)."""
    secret = render_secret(spec, cluster)
    objects = [secret, render_deployment(spec, cluster, secret["metadata"]["annotations"][SPEC_HASH])]
    objects.append(render_service(spec, cluster))
    if spec.port is not None:
        objects.append(render_http_route(spec, cluster))
    return objects
