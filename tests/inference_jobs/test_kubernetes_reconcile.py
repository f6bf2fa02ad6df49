"""The reconciler and the ``kubernetes`` backend against an API server emulator, over HTTP, through the official
client (``tests/kube/emulator.py``). Celery runs eagerly here (the round trip through a real broker is in
``tests/test_celery.py``); writes trigger reconciles through ``transaction.on_commit`` as in production.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from catalog.services import runtime_image_version_publish
from gateways.models import GatewayPort
from inference_jobs import reconciler
from inference_jobs.choices import TaskStatus
from inference_jobs.models import InferenceTask
from inference_jobs.orchestrator.kubernetes import render
from inference_jobs.services import task_create
from inference_jobs.tasks import reconcile_task
from tenancy.credentials import credential_matches
from tests.conftest import api_client_for, make_deployable
from tests.kube.cluster import create_via_api

GATEWAY_NS = "aicp-gateways"
TASK_KINDS = ("deployments", "services", "secrets", "httproutes")


def labelled(kube, task_id: int) -> dict[str, list[str]]:
    selector = f"aicp.io/task={task_id}"
    found = {plural: [o["metadata"]["name"] for o in kube.objects(plural, label_selector=selector)] for plural in
             (*TASK_KINDS, "pods", "namespaces", "resourcequotas", "networkpolicies", "configmaps")}  # fmt: skip
    return {plural: names for plural, names in found.items() if names}


def listeners(kube, gateway: str) -> dict[str, int]:
    obj = kube.get("gateways", GATEWAY_NS, gateway)
    return {item["name"]: item["port"] for item in ((obj or {}).get("spec") or {}).get("listeners") or []}


# ---- 1. what a task creates, and what deleting it leaves ----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mode", "accelerator", "resource"),
    [
        ("normal", "nvidia-gpu", "nvidia.com/gpu"),
        ("high_performance", "nvidia-gpu", "nvidia.com/gpu"),
        ("normal", "iluvatar-bi-v100", "iluvatar.ai/gpu"),
        ("high_performance", "iluvatar-mr-v100", "iluvatar.ai/gpu"),
    ],
)
def test_create_produces_exactly_the_objects_and_delete_leaves_nothing(
    kube, django_capture_on_commit_callbacks, mode, accelerator, resource
):
    deployable = make_deployable("acme", accelerator=accelerator)
    deployable.pool.node_selector = {"aicp.io/pool": "a100"}
    deployable.pool.tolerations = [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    deployable.pool.save()
    task = create_via_api(deployable, django_capture_on_commit_callbacks, mode=mode, async_batching=False,
                          temperature=0.3, system_prompt="Be brief.")  # fmt: skip
    ns, name, port = "aicp-acme", f"task-{task.pk}", task.gateway_port.port
    ours = {"aicp.io/installation": "aicp", "aicp.io/tenant": "acme"}
    labels = {**ours, "aicp.io/task": str(task.pk)}

    namespace = kube.get("namespaces", None, ns)
    assert ours.items() <= namespace["metadata"]["labels"].items()
    quota = kube.objects("resourcequotas", ns)
    units = str(deployable.tenant.max_compute_units)
    assert [q["spec"]["hard"] for q in quota] == [{"requests.iluvatar.ai/gpu": units, "requests.nvidia.com/gpu": units}]
    (policy,) = kube.objects("networkpolicies", ns)
    assert policy["spec"]["ingress"] == [
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": GATEWAY_NS}}}]}
    ]
    assert labelled(kube, task.pk) == {
        "deployments": [name], "services": [name], "secrets": [f"{name}-adapter"], "httproutes": [name],
    }  # fmt: skip

    deployment = kube.get("deployments", ns, name)
    assert deployment["metadata"]["labels"] == labels
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    engine, adapter = pod["containers"]
    version = task.runtime_image_version
    assert engine["image"] == adapter["image"] == f"{version.image.repository}:{version.version}"
    assert engine["resources"]["limits"] == {resource: "2"}
    assert engine["volumeMounts"] == [
        {"name": "model", "mountPath": "/models/model", "subPath": task.model.storage_path, "readOnly": True}
    ]
    command = engine["command"]
    if mode == "high_performance":
        assert command[:3] == ["vllm", "serve", "/models/model"]
        flags = dict(zip(command[3::2], command[4::2], strict=True))
        assert flags["--tensor-parallel-size"] == "2" and flags["--max-num-seqs"] == "1"
        assert flags["--served-model-name"] == "chat"
        assert flags["--override-generation-config"] == '{"repetition_penalty":1.0,"temperature":0.3,"top_p":0.9}'
    else:
        assert command[:3] == ["python", "-m", "serving.engine"]
        assert command[command.index("--batching") + 1] == "off" and "--device" in command
    assert engine["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8000}
    assert adapter["command"][:3] == ["python", "-m", "serving.adapter"]
    assert adapter["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert pod["nodeSelector"] == {"aicp.io/pool": "a100"}
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {"name": "model", "persistentVolumeClaim": {"claimName": "aicp-models", "readOnly": True}} in pod["volumes"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == labels

    service = kube.get("services", ns, name)
    assert service["spec"]["selector"] == {"aicp.io/installation": "aicp", "aicp.io/task": str(task.pk)}
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    route = kube.get("httproutes", ns, name)
    (parent,) = route["spec"]["parentRefs"]
    assert (parent["name"], parent["namespace"], parent["sectionName"], parent["port"]) == (
        deployable.gateway.slug, GATEWAY_NS, name, port,
    )  # fmt: skip
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == name
    assert listeners(kube, deployable.gateway.slug) == {name: port}
    assert kube.get("secrets", ns, f"{name}-adapter")["metadata"]["labels"] == labels

    task.refresh_from_db()
    assert task.status == TaskStatus.DEPLOYING

    client = api_client_for(deployable.member)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/api/v1/tasks/{task.pk}/").status_code == 202
    assert labelled(kube, task.pk) == {}
    assert listeners(kube, deployable.gateway.slug) == {}
    assert not InferenceTask.objects.filter(pk=task.pk).exists()
    assert not GatewayPort.objects.filter(port=port, gateway=deployable.gateway).exists()


# ---- 2. what the pods do shows on the task -----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("state", "status", "reason", "message"),
    [
        ("ready", TaskStatus.RUNNING, "Running", "1 of 1 instance(s) ready."),
        ("image_pull", TaskStatus.FAILED, "ImagePullBackOff", "Back-off pulling image"),
        ("crash_loop", TaskStatus.FAILED, "CrashLoopBackOff", "keeps crashing (exit code 1"),
        ("oom", TaskStatus.FAILED, "OOMKilled", "ran out of memory"),
        ("unschedulable", TaskStatus.FAILED, "Unschedulable", "Insufficient"),
    ],
)
def test_pod_states_show_as_the_task_status_within_one_reconcile(
    kube, django_capture_on_commit_callbacks, state, status, reason, message
):
    deployable = make_deployable("acme")
    task = create_via_api(deployable, django_capture_on_commit_callbacks)
    kube.simulate_pods("aicp-acme", f"task-{task.pk}", state)
    assert reconciler.reconcile_task(task.pk) == status
    task.refresh_from_db()
    assert task.status == status and message in task.status_message
    assert task.events.filter(reason=reason).exists()
    if state != "ready":  # and back once the pods recover
        kube.simulate_pods("aicp-acme", f"task-{task.pk}", "ready")
        assert reconciler.reconcile_task(task.pk) == TaskStatus.RUNNING


def _warning(kube, namespace: str, kind: str, name: str, reason: str, message: str, at: str) -> None:
    meta = {"name": f"{name}.{reason.lower()}", "namespace": namespace, "creationTimestamp": at}
    involved = {"kind": kind, "namespace": namespace, "name": name}
    kube.seed({"apiVersion": "v1", "kind": "Event", "metadata": meta, "involvedObject": involved, "reason": reason,
               "message": message, "type": "Warning", "lastTimestamp": at})  # fmt: skip


@pytest.mark.django_db
def test_a_task_whose_pods_cannot_start_says_why_from_their_warning_events(kube, django_capture_on_commit_callbacks):
    deployable = make_deployable("acme")
    task = create_via_api(deployable, django_capture_on_commit_callbacks)
    name = f"task-{task.pk}"
    # Over quota: the ReplicaSet cannot create a pod, and only its event says so.
    _warning(kube, "aicp-acme", "ReplicaSet", f"{name}-5d8f7", "FailedCreate",
             'pods "x" is forbidden: exceeded quota: aicp-accelerators', "2026-11-22T10:00:00Z")  # fmt: skip
    _warning(kube, "aicp-acme", "Pod", "task-999999-abc-0", "BackOff", "another task's pod", "2026-11-22T10:05:00Z")
    assert reconciler.reconcile_task(task.pk) == TaskStatus.DEPLOYING
    task.refresh_from_db()
    assert task.status_message == "0 of 1 instance(s) ready. FailedCreate: " + (
        'pods "x" is forbidden: exceeded quota: aicp-accelerators'
    )
    # A pod that waits for its volume: its newest warning wins, and an old ReplicaSet's events no longer count.
    kube.simulate_pods("aicp-acme", name, "progressing")
    (pod,) = kube.objects("pods", "aicp-acme", label_selector=f"aicp.io/task={task.pk}")
    _warning(kube, "aicp-acme", "Pod", pod["metadata"]["name"], "FailedMount",
             'persistentvolumeclaim "aicp-models" not found', "2026-11-22T10:10:00Z")  # fmt: skip
    assert reconciler.reconcile_task(task.pk) == TaskStatus.DEPLOYING
    task.refresh_from_db()
    assert task.status_message == '0 of 1 instance(s) ready. FailedMount: persistentvolumeclaim "aicp-models" not found'
    # Once running, warnings are not read at all.
    kube.simulate_pods("aicp-acme", name, "ready")
    kube.reset_log()
    assert reconciler.reconcile_task(task.pk) == TaskStatus.RUNNING
    assert not [record for record in kube.requests if record.plural == "events"]


# ---- 3. faults ----------------------------------------------------------------------------------------------


def _exactly_one_of_each(kube, task_id):
    found = labelled(kube, task_id)
    assert {plural: len(names) for plural, names in found.items()} == dict.fromkeys(TASK_KINDS, 1)


@pytest.mark.django_db
def test_temporary_faults_are_retried_until_the_task_converges(kube, django_capture_on_commit_callbacks):
    deployable = make_deployable("acme")
    kube.inject(verb="create", plural="deployments", status=500, times=2)
    kube.inject(verb="patch", plural="gateways", status=409, times=1)
    kube.inject(verb="get", plural="services", status=503, times=1)
    kube.inject(verb="create", plural="secrets", status=429, times=1)
    # The client gives up after 1 s, but the create lands later: the retry must find it, not create a second one.
    kube.inject(verb="create", plural="httproutes", status=0, delay=1.5, times=1)
    task = create_via_api(deployable, django_capture_on_commit_callbacks)  # eager Celery retries at once
    _exactly_one_of_each(kube, task.pk)
    assert listeners(kube, deployable.gateway.slug) == {f"task-{task.pk}": task.gateway_port.port}
    task.refresh_from_db()
    assert task.status == TaskStatus.DEPLOYING


@pytest.mark.django_db
def test_faults_that_outlast_the_retries_leave_the_sweep_to_converge(kube, django_capture_on_commit_callbacks):
    deployable = make_deployable("acme")
    kube.inject(verb="create", plural="deployments", status=500, times=-1)
    task = create_via_api(deployable, django_capture_on_commit_callbacks)
    assert labelled(kube, task.pk).get("deployments") is None
    kube.clear_faults()
    assert reconciler.reconcile_sweep()["errors"] == 0
    _exactly_one_of_each(kube, task.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("status", [403, 422])
def test_permanent_refusals_mark_the_task_failed_with_the_message(kube, django_capture_on_commit_callbacks, status):
    deployable = make_deployable("acme")
    kube.inject(verb="create", plural="deployments", status=status, times=-1, message="denied by policy xyz")
    task = create_via_api(deployable, django_capture_on_commit_callbacks)
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED
    assert f"{status} denied by policy xyz" in task.status_message
    assert task.events.filter(reason="ApplyFailed", level="error").exists()
    kube.clear_faults()
    reconciler.reconcile_task(task.pk)
    task.refresh_from_db()
    assert task.status == TaskStatus.DEPLOYING
    _exactly_one_of_each(kube, task.pk)


# ---- 4. concurrent reconciles on one gateway --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_reconciles_on_one_gateway_keep_every_listener(kube, settings):
    deployable = make_deployable("acme")
    settings.AICP_ORCHESTRATOR = "none"  # create quietly, then reconcile all at once
    tasks = [task_create(actor=deployable.member, **deployable.task_fields(name=f"t{i}")) for i in range(6)]
    settings.AICP_ORCHESTRATOR = "kubernetes"
    reconciler.reconcile_task(tasks[0].pk)  # the namespace and the Gateway exist; now race on the listeners
    # Widen the read-modify-write gap: each patch of the Gateway waits before it applies, so others read meanwhile.
    kube.inject(verb="patch", plural="gateways", status=0, delay=0.2, times=-1)
    barrier = threading.Barrier(len(tasks) - 1)
    errors = []

    def run(task_id):
        try:
            barrier.wait(timeout=30)
            reconcile_task.apply(args=(task_id,)).get()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(task.pk,)) for task in tasks[1:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [], errors
    expected = {f"task-{task.pk}": GatewayPort.objects.get(task=task).port for task in tasks}
    assert listeners(kube, deployable.gateway.slug) == expected
    conflicts = [r for r in kube.requests if r.plural == "gateways" and r.status == 409]
    assert conflicts  # the race did happen, and was resolved by re-reading


# ---- 5. runtime image versions, stop, scale ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_new_image_version_changes_nothing_until_update_image(kube, django_capture_on_commit_callbacks):
    deployable = make_deployable("acme")
    task = create_via_api(deployable, django_capture_on_commit_callbacks)
    name = f"task-{task.pk}"
    image = task.runtime_image_version.image
    before = kube.get("deployments", "aicp-acme", name)
    runtime_image_version_publish(actor=None, image=image, version="9.9.9")
    kube.reset_log()
    reconciler.reconcile_sweep()
    assert kube.writes() == 0
    assert (
        kube.get("deployments", "aicp-acme", name)["metadata"]["resourceVersion"]
        == before["metadata"]["resourceVersion"]
    )

    client = api_client_for(deployable.member)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/api/v1/tasks/{task.pk}/update-image/").status_code == 200
    engine, adapter = kube.get("deployments", "aicp-acme", name)["spec"]["template"]["spec"]["containers"]
    assert engine["image"] == adapter["image"] == f"{image.repository}:9.9.9"
    task.refresh_from_db()
    assert task.status == TaskStatus.UPDATING
    kube.simulate_pods("aicp-acme", name, "ready")
    assert reconciler.reconcile_task(task.pk) == TaskStatus.RUNNING


@pytest.mark.django_db
def test_stop_scales_to_zero_keeping_the_port_and_scale_changes_replicas(kube, django_capture_on_commit_callbacks):
    deployable = make_deployable("acme")
    task = create_via_api(deployable, django_capture_on_commit_callbacks)
    client, name = api_client_for(deployable.member), f"task-{task.pk}"
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/api/v1/tasks/{task.pk}/scale/", {"instances": 3}, format="json").status_code == 200
    assert kube.get("deployments", "aicp-acme", name)["spec"]["replicas"] == 3
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/api/v1/tasks/{task.pk}/stop/").status_code == 200
    assert kube.get("deployments", "aicp-acme", name)["spec"]["replicas"] == 0
    assert listeners(kube, deployable.gateway.slug) == {name: task.gateway_port.port}
    task.refresh_from_db()
    assert task.status == TaskStatus.STOPPED
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/api/v1/tasks/{task.pk}/start/").status_code == 200
    assert kube.get("deployments", "aicp-acme", name)["spec"]["replicas"] == 3


# ---- the sweep: drift, orphans, idempotence -----------------------------------------------------------------


@pytest.mark.django_db
def test_sweep_repairs_drift_deletes_orphans_and_writes_nothing_when_in_sync(kube, django_capture_on_commit_callbacks):
    deployable = make_deployable("acme")
    task = create_via_api(deployable, django_capture_on_commit_callbacks)
    name = f"task-{task.pk}"
    kube.reset_log()
    assert reconciler.reconcile_sweep()["orphans_deleted"] == 0
    assert kube.writes() == 0

    deployment = kube.get("deployments", "aicp-acme", name)
    deployment["spec"]["replicas"] = 5  # someone scaled by hand
    kube.seed(deployment)
    orphan = render.render_service(render_spec_for_task_id(task, 999_999), render.ClusterSettings())
    kube.seed(orphan)  # labelled ours, but its task is gone
    kube.reset_log()
    report = reconciler.reconcile_sweep()
    assert report["orphans_deleted"] == 1
    assert kube.get("deployments", "aicp-acme", name)["spec"]["replicas"] == 1
    assert kube.get("services", "aicp-acme", "task-999999") is None
    assert kube.writes() == 2  # one patch, one delete


def render_spec_for_task_id(task, task_id):
    from dataclasses import replace

    from inference_jobs.orchestrator.spec import spec_of

    return replace(spec_of(task), id=task_id)


# ---- node inventory -------------------------------------------------------------------------------------------


def _node(name, labels, cards, *, ready=True, unschedulable=False):
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "allocatable": {"nvidia.com/gpu": str(cards), "cpu": "64"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


@pytest.mark.django_db
def test_node_inventory_makes_pool_capacity_follow_the_cluster(kube):
    from compute_pools.tasks import node_inventory

    deployable = make_deployable("acme")
    pool = deployable.pool
    pool.node_selector = {"aicp.io/pool": "a100"}
    pool.save()
    kube.seed(_node("gpu-1", {"aicp.io/pool": "a100"}, 8))
    kube.seed(_node("gpu-2", {"aicp.io/pool": "a100"}, 8))
    kube.seed(_node("gpu-3", {"aicp.io/pool": "a100"}, 8, ready=False))  # not Ready: not counted
    kube.seed(_node("gpu-4", {"aicp.io/pool": "a100"}, 8, unschedulable=True))  # cordoned: not counted
    kube.seed(_node("other", {"aicp.io/pool": "h100"}, 8))  # another pool's node
    assert node_inventory.apply().get() == {pool.slug: 16}
    pool.refresh_from_db()
    assert pool.capacity_compute_units == 16
    assert sorted(node["name"] for node in pool.observed_nodes) == ["gpu-1", "gpu-2", "gpu-3", "gpu-4"]
    assert pool.inventory_at is not None


@pytest.mark.django_db
def test_a_new_or_revoked_tenant_key_reaches_the_adapter_config(kube, django_capture_on_commit_callbacks):
    import base64
    import json

    from tenancy.services import credential_revoke, tenant_api_key_create

    deployable = make_deployable("acme")
    task = create_via_api(deployable, django_capture_on_commit_callbacks)

    def keys():
        secret = kube.get("secrets", "aicp-acme", f"task-{task.pk}-adapter")
        return json.loads(base64.b64decode(secret["data"]["adapter.json"]))["api_keys"]

    assert keys() == []
    with django_capture_on_commit_callbacks(execute=True):
        created = tenant_api_key_create(actor=deployable.member, tenant=deployable.tenant, name="app")
    assert keys() == [{"id": created.credential.pk, "digest": created.credential.digest}]
    with django_capture_on_commit_callbacks(execute=True):
        credential_revoke(actor=deployable.member, credential=created.credential)
    assert keys() == []


@pytest.mark.django_db
def test_switching_reflow_off_or_rotating_the_ingest_token_rolls_the_adapter(kube, django_capture_on_commit_callbacks):
    """Capture stops at the next reconcile: the adapter's config changes and its pods roll (config hash)."""
    import base64
    import json

    deployable = make_deployable("acme")
    task = create_via_api(deployable, django_capture_on_commit_callbacks, reflow_enabled=True)
    client = api_client_for(deployable.member)

    def adapter() -> tuple[dict, str]:
        secret = kube.get("secrets", "aicp-acme", f"task-{task.pk}-adapter")
        deployment = kube.get("deployments", "aicp-acme", f"task-{task.pk}")
        config_hash = deployment["spec"]["template"]["metadata"]["annotations"]["aicp.io/config-hash"]
        return json.loads(base64.b64decode(secret["data"]["adapter.json"])), config_hash

    config, rolled = adapter()
    assert config["reflow"]["enabled"] is True
    assert credential_matches(config["ingest"]["token"], InferenceTask.objects.get(pk=task.pk).ingest_token_digest)
    with django_capture_on_commit_callbacks(execute=True):
        client.patch(f"/api/v1/tasks/{task.pk}/", {"reflow_enabled": False}, format="json")
    config, off = adapter()
    assert config["reflow"]["enabled"] is False
    assert off != rolled
    with django_capture_on_commit_callbacks(execute=True):
        token = client.post(f"/api/v1/tasks/{task.pk}/rotate-ingest-token/").json()["ingest_token"]
    config, rotated = adapter()
    assert config["ingest"]["token"] == token
    assert rotated != off


@pytest.mark.django_db
def test_only_one_sweep_runs_at_a_time(kube):
    """A second sweep does not wait for the first: it skips (the lock is a PostgreSQL session advisory lock)."""
    import psycopg

    from controlplane.locks import lock_key

    make_deployable("acme")
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [lock_key(reconciler.SWEEP_LOCK)])  # a sweep elsewhere
        assert reconciler.reconcile_sweep() is None
        assert kube.writes() == 0
    assert reconciler.reconcile_sweep() == {"tasks": 0, "errors": 0, "removed": 0, "orphans_deleted": 0}


@pytest.mark.django_db(transaction=True)
def test_a_reconcile_sent_through_redis_runs_on_a_worker(kube, settings, monkeypatch):
    """The whole path once with a real broker: a reconcile message through Redis, a Celery worker, the emulator."""
    import time

    import redis
    from celery import Celery, signals

    from tests.test_celery import REDIS_URL, TIMEOUT_S, embedded_worker

    for name in ("CELERY_BROKER_URL", "CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL"):
        monkeypatch.delenv(name, raising=False)
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).flushdb()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (CI starts one): {exc}")
    deployable = make_deployable("acme")
    settings.AICP_ORCHESTRATOR = "none"
    task = task_create(actor=deployable.member, **deployable.task_fields())
    settings.AICP_ORCHESTRATOR = "kubernetes"

    app = Celery("aicp-reconcile-test", set_as_current=False, fixups=[])
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url=REDIS_URL, broker_transport_options={}, task_always_eager=False, beat_schedule={},
                    worker_hijack_root_logger=False)  # fmt: skip

    def close_worker_connection(**kwargs):  # the worker thread's database connection, or the test db stays in use
        connection.close()

    signals.task_postrun.connect(close_worker_connection, weak=False)
    with embedded_worker(app):
        app.send_task("inference_jobs.tasks.reconcile_task", args=[task.pk])
        recorded = InferenceTask.objects.filter(pk=task.pk, observed_generation=task.generation)
        deadline = time.monotonic() + TIMEOUT_S
        while not recorded.exists() and time.monotonic() < deadline:  # the worker records after converging
            time.sleep(0.1)
    signals.task_postrun.disconnect(close_worker_connection)
    assert kube.get("deployments", "aicp-acme", f"task-{task.pk}") is not None
    task.refresh_from_db()
    assert task.status == TaskStatus.DEPLOYING and task.observed_generation == task.generation
