"""The Helm chart (helm/aicp), linted and installed by Helm's own engine against the API-server emulator.

Helm runs in a subprocess (``tests/helm/helm_runner.py``, the ``helm-sdkpy`` bindings of Helm's Go library) and
talks to the emulator over HTTP with a kubeconfig, as ``helm install`` talks to a cluster: it renders the chart,
creates the hooks (ConfigMap, Secret, then the migration Job, which the emulator reports as succeeded as the Job
controller would) and then every other object. The emulator runs no pods, so the test checks what was rendered and
created, not that the control plane starts: that part is the images' (tests/test_packaging.py) and the settings'
(tests/test_production.py).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.conf import settings

from compute_pools.tasks import node_inventory
from inference_jobs import reconciler
from inference_jobs.choices import TaskStatus
from inference_jobs.tasks import reconcile_sweep
from tests.conftest import api_client_for, make_deployable
from tests.helpers import database_url, run_manage
from tests.kube.cluster import create_via_api
from tests.kube.emulator import RESOURCES, KubeEmulator

CHART = settings.BASE_DIR / "helm" / "aicp"
ALL_OPTIONS = Path(__file__).with_name("values-all-options.yaml")
K8S_VERSION = "1.33.0"
NAMESPACE = "aicp-system"
RELEASE = "aicp"


def helm(*args: str) -> dict:
    """Run Helm's engine in a process of its own (HELM_DRIVER=memory: see helm_runner); returns its JSON answer."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.helm.helm_runner", *args],
        env={**os.environ, "HELM_DRIVER": "memory"},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.stdout, f"helm runner printed nothing (exit {done.returncode}): {done.stderr[-3000:]}"
    answer = json.loads(done.stdout.splitlines()[-1])
    assert done.returncode == 0 and "error" not in answer, answer.get("error") or done.stderr[-3000:]
    return answer


def all_options() -> dict:
    return yaml.safe_load(ALL_OPTIONS.read_text())


def merged(base: dict, override: dict) -> dict:
    """``override`` deep-merged into ``base``, as Helm merges ``-f`` files into the chart's values."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        result[key] = (
            merged(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) else value
        )
    return result


# ---- install -----------------------------------------------------------------------------------------------------


@dataclass
class Release:
    """What one ``helm install`` (and maybe an upgrade after it) rendered, created and printed."""

    answer: dict
    kube: KubeEmulator
    objects: list[dict] = field(default_factory=list)  # the manifest and the hooks, as rendered
    jobs_completed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def notes(self) -> str:
        return self.answer["info"]["notes"]

    def of_kind(self, kind: str) -> list[dict]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str, name: str) -> dict:
        (found,) = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        return found

    def names(self) -> set[tuple[str, str]]:
        return {(obj["kind"], obj["metadata"]["name"]) for obj in self.objects}


def rendered_objects(answer: dict) -> list[dict]:
    documents = [answer["manifest"], *(hook["manifest"] for hook in answer.get("hooks") or [])]
    return [obj for text in documents for obj in yaml.safe_load_all(text) if obj]


@contextlib.contextmanager
def release_cluster(tmp_path: Path):
    """A fresh emulator with the release's namespace, and a kubeconfig for it."""
    with KubeEmulator() as kube:
        kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "emulator", "cluster": {"server": kube.url}}],
                    "users": [{"name": "admin", "user": {"token": "emulator-accepts-any"}}],
                    "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "admin"}}],
                    "current-context": "emulator",
                }
            )
        )
        yield kube, kubeconfig


@pytest.fixture
def cluster(tmp_path):
    with release_cluster(tmp_path) as found:
        yield found


def install(cluster, tmp_path, values: dict, upgrade: dict | None = None) -> tuple[Release, Release | None]:
    """``helm install`` (then ``helm upgrade`` with ``upgrade``) against the emulator, completing hook Jobs."""
    kube, kubeconfig = cluster
    paths = []
    for i, chosen in enumerate(v for v in (values, upgrade) if v is not None):
        path = tmp_path / f"values-{i}.json"
        path.write_text(json.dumps(chosen))
        paths.append(str(path))
    completed: list[tuple[str, str]] = []
    stop = threading.Event()

    def job_controller():
        while not stop.wait(0.05):
            completed.extend(kube.complete_jobs())

    thread = threading.Thread(target=job_controller, daemon=True)
    thread.start()
    try:
        answer = helm("install", str(CHART), RELEASE, NAMESPACE, str(kubeconfig), *paths)
    finally:
        stop.set()
        thread.join()
    first = Release(answer["install"], kube, rendered_objects(answer["install"]), completed)
    second = Release(answer["upgrade"], kube, rendered_objects(answer["upgrade"]), completed) if upgrade else None
    return first, second


def env_of(container: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in container.get("env") or []}


def secret_data(obj: dict) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in (obj.get("data") or {}).items()}


# ---- 1. lint and render ------------------------------------------------------------------------------------------


def lint_problems(chart: Path) -> list[dict]:
    """Helm lint's warnings and errors (severity 2 and 3; 1 is information, such as a missing icon)."""
    answer = helm("lint", str(chart))
    assert answer["TotalChartsLinted"] == 1
    return [message for message in answer["Messages"] if message["Severity"] >= 2]


def test_the_chart_lints_clean_with_default_values_and_with_every_option_on(tmp_path):
    assert lint_problems(CHART) == []
    # Helm lint reads the chart's own values.yaml: a copy whose values.yaml is the defaults with every option on.
    copy_ = tmp_path / "aicp"
    shutil.copytree(CHART, copy_)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    (copy_ / "values.yaml").write_text(yaml.safe_dump(merged(defaults, all_options())))
    assert lint_problems(copy_) == []
    # The check can fail: a template that calls a missing function is an error.
    (copy_ / "templates" / "broken.yaml").write_text("kind: ConfigMap\nmetadata:\n  name: {{ nosuchfunction }}\n")
    assert [message["Severity"] for message in lint_problems(copy_)] == [3]


def test_default_values_install_every_component_and_every_object_is_valid(cluster, tmp_path):
    release, _ = install(cluster, tmp_path, {})
    for obj in release.objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)  # raises on any schema violation
    assert release.names() == {
        ("ConfigMap", "aicp-config"),
        ("Secret", "aicp-secrets"),
        ("Job", "aicp-migrate"),
        ("ServiceAccount", "aicp"),
        ("ClusterRole", "aicp"),
        ("ClusterRoleBinding", "aicp"),
        ("PersistentVolumeClaim", "aicp-storage"),
        ("Deployment", "aicp-web"),
        ("Deployment", "aicp-worker"),
        ("Deployment", "aicp-beat"),
        ("Service", "aicp-web"),
        ("PodDisruptionBudget", "aicp-web"),
    }
    # Everything Helm rendered reached the cluster; the migration Job ran before the rest and was cleaned up.
    kube = release.kube
    for kind, name in release.names() - {("Job", "aicp-migrate")}:
        plural = next(rt.plural for rt in RESOURCES.values() if rt.kind == kind)
        namespaced = next(rt.namespaced for rt in RESOURCES.values() if rt.kind == kind)
        assert kube.get(plural, NAMESPACE if namespaced else None, name) is not None, (kind, name)
    assert release.jobs_completed == [(NAMESPACE, "aicp-migrate")]
    assert kube.get("jobs", NAMESPACE, "aicp-migrate") is None
    writes = [(r.verb, r.plural) for r in kube.requests if r.verb == "create"]
    assert writes.index(("create", "jobs")) < writes.index(("create", "deployments"))
    hooks = {hook["name"]: hook for hook in release.answer["hooks"]}
    assert hooks["aicp-migrate"]["events"] == ["pre-install", "pre-upgrade"]
    assert hooks["aicp-migrate"]["last_run"]["phase"] == "Succeeded"

    web = release.one("Deployment", "aicp-web")["spec"]["template"]["spec"]
    (container,) = web["containers"]
    assert container["command"][:3] == ["gunicorn", "--config", "python:controlplane.gunicorn_conf"]
    assert container["image"] == "registry.example.com/aicp/control-plane:0.1.0"  # the chart's appVersion
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["securityContext"]["runAsNonRoot"] is True and container["securityContext"]["readOnlyRootFilesystem"]
    assert web["automountServiceAccountToken"] is False  # only the worker calls the Kubernetes API
    worker = release.one("Deployment", "aicp-worker")["spec"]["template"]["spec"]
    assert worker["automountServiceAccountToken"] is True and worker["serviceAccountName"] == "aicp"
    beat = release.one("Deployment", "aicp-beat")["spec"]
    assert beat["replicas"] == 1 and beat["strategy"] == {"type": "Recreate"}

    config = release.one("ConfigMap", "aicp-config")["data"]
    assert config["DJANGO_DEBUG"] == "false" and config["AICP_ORCHESTRATOR"] == "kubernetes"
    assert config["AICP_KUBE_GATEWAY_CLASS"] == "aicp" and config["AICP_NVIDIA_RESOURCE_NAME"] == "nvidia.com/gpu"
    assert config["AICP_INGEST_URL"] == "http://aicp-web.aicp-system.svc:80/api/v1/ingest/"
    assert config["DJANGO_ALLOWED_HOSTS"] == "aicp-web.aicp-system.svc"
    # No database or broker given: the Secret holds only the generated key, and the notes say what is missing.
    assert set(secret_data(release.one("Secret", "aicp-secrets"))) == {"DJANGO_SECRET_KEY"}
    assert len(secret_data(release.one("Secret", "aicp-secrets"))["DJANGO_SECRET_KEY"]) == 64
    assert "NOT READY: the control plane needs a database" in release.notes
    assert "python manage.py createsuperuser" in release.notes


def test_every_option_on_renders_valid_objects_that_carry_each_value(cluster, tmp_path):
    release, _ = install(cluster, tmp_path, all_options())
    for obj in release.objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    names = release.names()
    assert {
        ("Ingress", "aicp-prod"),
        ("PodDisruptionBudget", "aicp-prod-web"),
        ("ServiceAccount", "aicp-controller"),
    } <= names
    assert {("StatefulSet", "aicp-postgresql"), ("Service", "aicp-postgresql"), ("Secret", "aicp-postgresql")} <= names
    assert {("Deployment", "aicp-redis"), ("Service", "aicp-redis"), ("NetworkPolicy", "aicp-redis")} <= names
    assert ("PersistentVolumeClaim", "aicp-prod-storage") in names

    config = release.one("ConfigMap", "aicp-prod-config")["data"]
    assert config["DJANGO_ALLOWED_HOSTS"].split(",") == [
        "aicp.internal.example.com",
        "aicp.example.com",
        "console.aicp.example.com",
        "aicp-prod-web.aicp-system.svc",
    ]
    assert config["DJANGO_CSRF_TRUSTED_ORIGINS"].split(",") == [
        "https://aicp.internal.example.com",
        "https://aicp.example.com",
        "https://console.aicp.example.com",
    ]
    assert {
        key: config[key]
        for key in (
            "AICP_INSTALLATION",
            "AICP_KUBE_GATEWAY_CLASS",
            "AICP_KUBE_NAMESPACE_PREFIX",
            "AICP_NVIDIA_RESOURCE_NAME",
            "AICP_ILUVATAR_RESOURCE_NAME",
            "AICP_HSTS_SECONDS",
            "AICP_TOKEN_LAST_USED_RESOLUTION_S",
            "AICP_INGEST_URL",
        )
    } == {
        "AICP_INSTALLATION": "prod-eu",
        "AICP_KUBE_GATEWAY_CLASS": "istio",
        "AICP_KUBE_NAMESPACE_PREFIX": "llm",
        "AICP_NVIDIA_RESOURCE_NAME": "nvidia.com/mig-3g.40gb",
        "AICP_ILUVATAR_RESOURCE_NAME": "iluvatar.com/gpu",
        "AICP_HSTS_SECONDS": "63072000",
        "AICP_TOKEN_LAST_USED_RESOLUTION_S": "120",
        "AICP_INGEST_URL": "http://aicp-prod-web.aicp-system.svc:8080/api/v1/ingest/",
    }
    # The bundled database and broker, with the password quoted into the URL; the secret key from its own Secret.
    secrets = secret_data(release.one("Secret", "aicp-prod-secrets"))
    assert secrets == {
        "DATABASE_URL": "postgres://aicp:s3cret%2Fwith%3Aodd%40chars@aicp-postgresql:5432/aicp",
        "CELERY_BROKER_URL": "redis://aicp-redis:6379/0",
        "AICP_METRICS_TOKEN": "scrape-me-with-this-token",
    }
    web = release.one("Deployment", "aicp-prod-web")
    pod = web["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].endswith("@sha256:4f2e8c1d9a7b6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f")
    assert env_of(container)["DJANGO_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "aicp-django",
        "key": "secret-key",
    }
    assert env_of(container)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "aicp-prod-secrets"
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}] and pod["tolerations"][0]["key"] == "control"
    assert web["spec"]["replicas"] == 3 and web["spec"]["template"]["metadata"]["labels"]["team"] == "platform"
    ingress = release.one("Ingress", "aicp-prod")["spec"]
    assert ingress["ingressClassName"] == "nginx" and ingress["tls"][0]["secretName"] == "aicp-tls"
    # The bundled database exists only once the release does: the migrations run after it on a first install.
    hooks = {hook["name"]: hook for hook in release.answer["hooks"]}
    assert hooks["aicp-prod-migrate"]["events"] == ["post-install", "pre-upgrade"]
    assert release.jobs_completed == [(NAMESPACE, "aicp-prod-migrate")]
    assert "NOT READY" not in release.notes and "https://aicp.example.com/" in release.notes


def test_existing_secrets_are_referenced_and_never_copied(cluster, tmp_path):
    values = {
        "externalDatabase": {"existingSecret": "pg-app", "existingSecretKey": "uri"},
        "externalRedis": {"existingSecret": "redis-auth", "existingSecretKey": "url"},
        "secretKey": {"existingSecret": "django", "existingSecretKey": "key"},
        "metricsToken": {"existingSecret": "scrape", "existingSecretKey": "token"},
        "storage": {"existingClaim": "shared-models"},
    }
    release, _ = install(cluster, tmp_path, values)
    assert secret_data(release.one("Secret", "aicp-secrets")) == {}
    for deployment in release.of_kind("Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        refs = {
            name: entry["valueFrom"]["secretKeyRef"]
            for name, entry in env_of(container).items()
            if "valueFrom" in entry
        }
        assert refs == {
            "DJANGO_SECRET_KEY": {"name": "django", "key": "key"},
            "DATABASE_URL": {"name": "pg-app", "key": "uri"},
            "CELERY_BROKER_URL": {"name": "redis-auth", "key": "url"},
            "AICP_METRICS_TOKEN": {"name": "scrape", "key": "token"},
        }, deployment["metadata"]["name"]
    web = release.one("Deployment", "aicp-web")["spec"]["template"]["spec"]
    assert {"name": "storage", "persistentVolumeClaim": {"claimName": "shared-models"}} in web["volumes"]
    assert not release.of_kind("PersistentVolumeClaim")


def test_an_upgrade_keeps_the_generated_secret_key(cluster, tmp_path):
    values = {
        "externalDatabase": {"url": "postgres://aicp:pw@db:5432/aicp"},
        "externalRedis": {"url": "redis://r:6379/0"},
    }
    first, second = install(cluster, tmp_path, values, upgrade={**values, "web": {"replicas": 4}})
    key = secret_data(first.one("Secret", "aicp-secrets"))["DJANGO_SECRET_KEY"]
    assert secret_data(second.one("Secret", "aicp-secrets"))["DJANGO_SECRET_KEY"] == key
    assert secret_data(second.kube.get("secrets", NAMESPACE, "aicp-secrets"))["DJANGO_SECRET_KEY"] == key
    assert second.kube.get("deployments", NAMESPACE, "aicp-web")["spec"]["replicas"] == 4
    # The upgrade ran the migrations again, before it changed the Deployments.
    assert second.jobs_completed == [(NAMESPACE, "aicp-migrate"), (NAMESPACE, "aicp-migrate")]


# ---- 2. the ClusterRole is exactly what the backend calls ----------------------------------------------------------


def cluster_role_grants(release: Release) -> set[tuple[str, str, str]]:
    (role,) = release.of_kind("ClusterRole")
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def backend_calls(kube: KubeEmulator, capture) -> set[tuple[str, str, str]]:
    """Every (API group, resource, verb) the control plane calls in a task's whole life, and in the periodic work."""
    kube.reset_log()
    deployable = make_deployable("acme")
    deployable.pool.node_selector = {"aicp.io/pool": "a100"}
    deployable.pool.save()
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "gpu-1", "labels": {"aicp.io/pool": "a100"}},
        "status": {"allocatable": {"nvidia.com/gpu": "8"}, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    kube.seed(node)
    node_inventory.apply()
    kube.inject(verb="patch", plural="gateways", status=409, times=1)  # another writer: read the Gateway again
    task = create_via_api(deployable, capture)
    name = f"task-{task.pk}"
    kube.simulate_pods("aicp-acme", name, "progressing")
    assert reconciler.reconcile_task(task.pk) == TaskStatus.DEPLOYING  # reads the pods' warning events
    kube.simulate_pods("aicp-acme", name, "ready")
    client = api_client_for(deployable.member)
    with capture(execute=True):
        assert client.post(f"/api/v1/tasks/{task.pk}/stop/").status_code == 200
    with capture(execute=True):
        assert client.post(f"/api/v1/tasks/{task.pk}/start/").status_code == 200
    # Someone edits every object of the tenant and the task by hand: one reconcile patches each back.
    drifted = [
        ("namespaces", None, "aicp-acme"),
        ("resourcequotas", "aicp-acme", "aicp-accelerators"),
        ("networkpolicies", "aicp-acme", "aicp-gateway-only"),
        ("secrets", "aicp-acme", f"{name}-adapter"),
        ("deployments", "aicp-acme", name),
        ("services", "aicp-acme", name),
        ("httproutes", "aicp-acme", name),
    ]
    for plural, namespace, object_name in drifted:
        obj = kube.get(plural, namespace, object_name)
        obj["metadata"]["labels"]["aicp.io/tenant"] = "edited-by-hand"
        kube.seed(obj)  # written straight into the store: not a call of the backend
    reconciler.reconcile_task(task.pk)
    assert {kube.get(p, n, o)["metadata"]["labels"]["aicp.io/tenant"] for p, n, o in drifted} == {"acme"}
    # Objects of a task and a tenant AICP no longer knows: the sweep deletes them.
    ours = {"aicp.io/installation": "aicp"}
    kube.seed(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "aicp-gone", "labels": {**ours, "aicp.io/tenant": "gone"}},
        }
    )
    kube.seed(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "task-999999",
                "namespace": "aicp-acme",
                "labels": {**ours, "aicp.io/tenant": "acme", "aicp.io/task": "999999"},
            },
            "spec": {"ports": [{"port": 80}]},
        }
    )
    reconcile_sweep.apply()
    assert kube.get("namespaces", None, "aicp-gone") is None
    with capture(execute=True):
        assert client.delete(f"/api/v1/tasks/{task.pk}/").status_code in (202, 204)
    reconcile_sweep.apply()
    assert not kube.objects("deployments", "aicp-acme")
    return {(RESOURCES[r.plural].group, r.plural, r.verb) for r in kube.requests if r.plural is not None}


@pytest.mark.django_db
def test_the_cluster_role_grants_exactly_the_calls_the_backend_makes(
    kube, django_capture_on_commit_callbacks, tmp_path
):
    calls = backend_calls(kube, django_capture_on_commit_callbacks)
    with release_cluster(tmp_path) as other:  # the chart is installed on a cluster of its own
        release, _ = install(other, tmp_path, {})
    grants = cluster_role_grants(release)
    assert calls == grants, (
        f"called but not granted: {sorted(calls - grants)}; granted, never called: {sorted(grants - calls)}"
    )
    # Nodes, pods and events are read-only.
    assert {verb for group, resource, verb in grants if resource in ("nodes", "pods", "events")} == {"list"}


# ---- 3. the chart's settings pass Django's deployment checks --------------------------------------------------------


@pytest.mark.django_db
def test_manage_py_check_deploy_passes_with_the_settings_the_chart_renders(cluster, tmp_path):
    url = database_url()
    values = {
        "externalDatabase": {"url": url},
        "externalRedis": {"url": "redis://127.0.0.1:6379/0"},
        "ingress": {"enabled": True, "hosts": ["aicp.example.com"]},
    }
    release, _ = install(cluster, tmp_path, values)
    environment = {
        **release.one("ConfigMap", "aicp-config")["data"],
        **secret_data(release.one("Secret", "aicp-secrets")),
        "AICP_VAR_DIR": str(tmp_path / "var"),
    }
    check = ("check", "--deploy", "--fail-level", "WARNING")
    done = run_manage(*check, environment=environment, timeout=120)
    assert done.returncode == 0 and "WARNING" not in done.stderr, done.stdout + done.stderr
    # The same check fails when the chart's settings are weakened: it is not vacuous.
    done = run_manage(*check, environment={**environment, "AICP_SECURE": "false"}, timeout=120)
    assert done.returncode != 0 and "security.W012" in done.stdout + done.stderr
