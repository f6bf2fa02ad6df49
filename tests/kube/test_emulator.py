"""The Kubernetes API-server emulator, exercised only through the official client over HTTP."""

from __future__ import annotations

import json
import threading
import time

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from tests.kube.emulator import KubeEmulator

NS = "team-a"
IMAGE = "vllm/vllm-openai:v0.6.0"
GATEWAY = {"group": "gateway.networking.k8s.io", "version": "v1", "plural": "gateways"}


@pytest.fixture(scope="module")
def emulator():
    with KubeEmulator() as emu:
        yield emu


@pytest.fixture(autouse=True)
def clean(emulator):
    emulator.reset()
    yield
    assert emulator.server_errors == []


@pytest.fixture(scope="module")
def api(emulator):
    api_client = emulator.api_client()
    yield api_client
    api_client.close()


@pytest.fixture
def core(api):
    return k8s.CoreV1Api(api)


@pytest.fixture
def apps(api):
    return k8s.AppsV1Api(api)


@pytest.fixture
def net(api):
    return k8s.NetworkingV1Api(api)


@pytest.fixture
def custom(api):
    return k8s.CustomObjectsApi(api)


@pytest.fixture
def ns(core):
    core.create_namespace({"metadata": {"name": NS}})
    return NS


def deployment(name="web", replicas=2, labels=None, containers=None) -> dict:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**labels, "tier": "serving"}},
                "spec": {"containers": containers or [{"name": "engine", "image": IMAGE}]},
            },
        },
    }


def failure(call, *args, **kwargs) -> tuple[int, dict]:
    """The status code and Status body of a call that must fail."""
    with pytest.raises(ApiException) as raised:
        call(*args, **kwargs)
    return raised.value.status, json.loads(raised.value.body)


# ---- create / get / list ------------------------------------------------------------------------------------------


def test_create_fills_server_metadata(apps, ns):
    created = apps.create_namespaced_deployment(ns, deployment())
    meta = created.metadata
    assert (meta.name, meta.namespace, meta.generation) == ("web", ns, 1)
    assert len(meta.uid) == 36 and meta.creation_timestamp.tzinfo is not None
    assert int(meta.resource_version) > 0
    assert (created.api_version, created.kind) == ("apps/v1", "Deployment")
    fetched = apps.read_namespaced_deployment("web", ns)
    assert fetched.metadata.uid == meta.uid and fetched.metadata.resource_version == meta.resource_version
    assert fetched.spec.template.spec.containers[0].image == IMAGE


def test_resource_versions_are_global_and_increasing(core, ns):
    first = core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
    second = core.create_namespaced_secret(ns, {"metadata": {"name": "b"}, "stringData": {"token": "s3cret"}})
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert second.data == {"token": "czNjcmV0"} and second.type == "Opaque"  # stringData is folded into data
    listed = core.list_namespaced_config_map(ns)
    assert int(listed.metadata.resource_version) >= int(second.metadata.resource_version)


def test_generate_name(core, ns):
    created = core.create_namespaced_config_map(ns, {"metadata": {"generateName": "cfg-"}})
    assert created.metadata.name.startswith("cfg-") and len(created.metadata.name) == 9
    assert created.metadata.generate_name == "cfg-"


def test_list_with_label_and_field_selectors(core, apps, emulator, ns):
    core.create_namespace({"metadata": {"name": "team-b"}})
    apps.create_namespaced_deployment(ns, deployment("llama", labels={"app": "llama", "tier": "gpu"}))
    apps.create_namespaced_deployment(ns, deployment("qwen", labels={"app": "qwen", "tier": "cpu"}))
    apps.create_namespaced_deployment(ns, deployment("bare", labels={"app": "bare"}))
    apps.create_namespaced_deployment("team-b", deployment("llama", labels={"app": "llama", "tier": "gpu"}))

    def names(selector=None, fields=None, namespace=ns):
        listed = apps.list_namespaced_deployment(namespace, label_selector=selector, field_selector=fields)
        assert listed.kind == "DeploymentList"
        return [d.metadata.name for d in listed.items]

    assert names() == ["bare", "llama", "qwen"]  # sorted by name
    assert names("tier=gpu") == names("tier==gpu") == ["llama"]
    assert names("tier!=gpu") == ["bare", "qwen"]  # != also matches objects without the label
    assert names("tier in (gpu,cpu)") == ["llama", "qwen"]
    assert names("tier notin (gpu)") == ["bare", "qwen"]
    assert names("tier") == ["llama", "qwen"]
    assert names("!tier") == ["bare"]
    assert names("app in (llama, qwen),tier!=cpu") == ["llama"]
    assert names(fields="metadata.name=qwen") == ["qwen"]
    assert names(fields="metadata.name!=qwen,metadata.namespace==team-a") == ["bare", "llama"]

    everywhere = apps.list_deployment_for_all_namespaces(label_selector="app=llama")
    assert [(d.metadata.namespace, d.metadata.name) for d in everywhere.items] == [(ns, "llama"), ("team-b", "llama")]
    assert [n["metadata"]["name"] for n in emulator.objects("namespaces")] == [ns, "team-b"]

    status, body = failure(apps.list_namespaced_deployment, ns, field_selector="spec.replicas=2")
    assert (status, body["reason"]) == (400, "BadRequest")
    status, body = failure(apps.list_namespaced_deployment, ns, label_selector="tier in ()")
    assert status == 400


def test_pod_field_selectors(core, emulator, ns):
    for name, phase, node in (("a", "Running", "gpu-1"), ("b", "Pending", None), ("c", "Running", "gpu-2")):
        spec = {"containers": [{"name": "c", "image": IMAGE}], **({"nodeName": node} if node else {})}
        emulator.seed(
            {"kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec, "status": {"phase": phase}}
        )
    running = core.list_namespaced_pod(ns, field_selector="status.phase=Running")
    assert [p.metadata.name for p in running.items] == ["a", "c"]
    on_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=gpu-2")
    assert [p.metadata.name for p in on_node.items] == ["c"]
    assert [p.metadata.name for p in core.list_namespaced_pod(ns, field_selector="spec.nodeName=").items] == ["b"]


def test_list_pagination(core, ns):
    for i in range(5):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"cm-{i}"}})
    first = core.list_namespaced_config_map(ns, limit=2)
    assert [c.metadata.name for c in first.items] == ["cm-0", "cm-1"]
    assert first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map(ns, limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["cm-2", "cm-3", "cm-4"] and rest.metadata._continue is None


def test_duplicate_create_is_409_already_exists(apps, ns):
    apps.create_namespaced_deployment(ns, deployment())
    status, body = failure(apps.create_namespaced_deployment, ns, deployment())
    assert (status, body["reason"], body["kind"]) == (409, "AlreadyExists", "Status")
    assert body["message"] == 'deployments.apps "web" already exists'


def test_create_in_missing_namespace_is_404(apps, core):
    status, body = failure(apps.create_namespaced_deployment, "nowhere", deployment())
    assert (status, body["reason"], body["details"]["name"], body["details"]["kind"]) == (
        404,
        "NotFound",
        "nowhere",
        "namespaces",
    )
    status, body = failure(core.read_namespace, "nowhere")
    assert (status, body["message"]) == (404, 'namespaces "nowhere" not found')


@pytest.mark.parametrize(
    ("plural", "name"),
    [
        ("deployments", "Bad_Name"),
        ("deployments", "-web"),
        ("deployments", "w" * 254),
        ("configmaps", ""),
        ("services", "web.internal"),
        ("services", "1web"),
    ],
)
def test_invalid_names_are_422(core, apps, ns, plural, name):
    if plural == "deployments":
        status, body = failure(apps.create_namespaced_deployment, ns, {**deployment(), "metadata": {"name": name}})
    elif plural == "services":
        status, body = failure(core.create_namespaced_service, ns, {"metadata": {"name": name}, "spec": {}})
    else:
        status, body = failure(core.create_namespaced_config_map, ns, {"metadata": {"name": name}})
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_other_invalid_creates(core, apps, ns):
    status, body = failure(core.create_namespace, {"metadata": {"name": "team.a"}})  # namespaces are labels
    assert status == 422
    status, body = failure(apps.create_namespaced_deployment, ns, {**deployment(), "kind": "StatefulSet"})
    assert (status, body["details"]["causes"][0]["field"]) == (422, "kind")
    status, body = failure(core.create_namespaced_config_map, ns, {"metadata": {"name": "x", "labels": {"a": "b/c"}}})
    assert (status, body["details"]["causes"][0]["field"]) == (422, "metadata.labels")
    status, body = failure(core.create_namespaced_config_map, ns, {"metadata": {"name": "x", "namespace": "other"}})
    assert status == 400


def test_missing_object_is_404_not_found(apps, ns):
    status, body = failure(apps.read_namespaced_deployment, "ghost", ns)
    assert (status, body["reason"], body["details"]) == (
        404,
        "NotFound",
        {"name": "ghost", "group": "apps", "kind": "deployments"},
    )
    assert failure(apps.delete_namespaced_deployment, "ghost", ns)[0] == 404
    assert failure(apps.patch_namespaced_deployment, "ghost", ns, {"spec": {"replicas": 1}})[0] == 404
    assert failure(apps.replace_namespaced_deployment, "ghost", ns, deployment("ghost"))[0] == 404


# ---- updates, generation and the status subresource ---------------------------------------------------------------


def test_put_with_stale_resource_version_is_409(apps, ns):
    stale = apps.create_namespaced_deployment(ns, deployment())
    fresh = apps.read_namespaced_deployment("web", ns)
    fresh.spec.replicas = 3
    updated = apps.replace_namespaced_deployment("web", ns, fresh)
    assert updated.spec.replicas == 3 and updated.metadata.generation == 2
    stale.spec.replicas = 5
    status, body = failure(apps.replace_namespaced_deployment, "web", ns, stale)
    assert (status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified; please apply your changes to the latest version" in body["message"]
    stale.metadata.resource_version = None  # an unconditional update is allowed
    assert apps.replace_namespaced_deployment("web", ns, stale).spec.replicas == 5


def test_put_keeps_server_metadata(core, ns):
    created = core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg", "labels": {"a": "1"}}, "data": {}})
    body = {"metadata": {"name": "cfg", "uid": "forged", "labels": {"b": "2"}}, "data": {"k": "v"}}
    replaced = core.replace_namespaced_config_map("cfg", ns, body)
    assert replaced.metadata.uid == created.metadata.uid
    assert replaced.metadata.creation_timestamp == created.metadata.creation_timestamp
    assert replaced.metadata.labels == {"b": "2"} and replaced.data == {"k": "v"}


def test_generation_bumps_only_for_changes_outside_metadata_and_status(apps, ns):
    created = apps.create_namespaced_deployment(ns, deployment())
    rv = int(created.metadata.resource_version)

    relabelled = apps.patch_namespaced_deployment("web", ns, {"metadata": {"labels": {"team": "a"}}})
    assert relabelled.metadata.generation == 1 and int(relabelled.metadata.resource_version) > rv

    through_main = apps.patch_namespaced_deployment("web", ns, {"status": {"replicas": 7}})
    assert through_main.status.replicas is None and through_main.metadata.generation == 1  # status is ignored here

    scaled = apps.patch_namespaced_deployment("web", ns, {"spec": {"replicas": 4}})
    assert scaled.metadata.generation == 2

    status = apps.patch_namespaced_deployment_status(
        "web", ns, {"spec": {"replicas": 9}, "status": {"observedGeneration": 2, "replicas": 4}}
    )
    assert status.status.replicas == 4 and status.status.observed_generation == 2
    assert status.spec.replicas == 4 and status.metadata.generation == 2  # the status subresource ignores the spec
    assert apps.read_namespaced_deployment_status("web", ns).status.replicas == 4

    current = apps.read_namespaced_deployment("web", ns)
    current.status.replicas = 1
    current.spec.replicas = 6
    replaced = apps.replace_namespaced_deployment_status("web", ns, current)
    assert (replaced.status.replicas, replaced.spec.replicas, replaced.metadata.generation) == (1, 4, 2)


def test_a_write_that_changes_nothing_keeps_the_resource_version(core, ns):
    created = core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}, "data": {"k": "v"}})
    same = core.patch_namespaced_config_map("cfg", ns, {"data": {"k": "v"}})
    assert same.metadata.resource_version == created.metadata.resource_version


def test_status_is_kept_for_kinds_without_a_status_subresource_and_reset_on_create_for_the_others(core, apps, ns):
    created = apps.create_namespaced_deployment(ns, {**deployment(), "status": {"replicas": 3}})
    assert created.status.replicas is None
    assert core.read_namespace(ns).status.phase == "Active"
    assert created.spec.replicas == 2
    defaulted = apps.create_namespaced_deployment(ns, {**deployment("one"), "spec": {**deployment()["spec"]}})
    assert defaulted.spec.replicas == 2
    unset = deployment("bare")
    del unset["spec"]["replicas"]
    assert apps.create_namespaced_deployment(ns, unset).spec.replicas == 1


# ---- patches ------------------------------------------------------------------------------------------------------


def test_merge_patch(core, ns):
    core.create_namespaced_config_map(
        ns, {"metadata": {"name": "cfg", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1", "y": "2"}}
    )
    patched = core.patch_namespaced_config_map(
        "cfg",
        ns,
        {"metadata": {"labels": {"a": None, "c": "3"}}, "data": {"y": None, "z": "3"}},
        _content_type="application/merge-patch+json",
    )
    assert patched.metadata.labels == {"b": "2", "c": "3"}
    assert patched.data == {"x": "1", "z": "3"}


def test_merge_patch_replaces_lists(apps, ns):
    containers = [{"name": "engine", "image": IMAGE}, {"name": "adapter", "image": "aicp/adapter:1"}]
    apps.create_namespaced_deployment(ns, deployment(containers=containers))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "engine", "image": "vllm:2"}]}}}}
    patched = apps.patch_namespaced_deployment("web", ns, patch, _content_type="application/merge-patch+json")
    assert [(c.name, c.image) for c in patched.spec.template.spec.containers] == [("engine", "vllm:2")]


def test_strategic_merge_patch_merges_containers_and_env_by_name(apps, ns):
    engine = {"name": "engine", "image": IMAGE, "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    apps.create_namespaced_deployment(ns, deployment(containers=[engine, {"name": "adapter", "image": "adapter:1"}]))
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "engine", "image": "vllm:2", "env": [{"name": "B", "value": "3"}, {"name": "C"}]},
                        {"name": "sidecar", "image": "envoy:1"},
                        {"name": "adapter", "$patch": "delete"},
                    ]
                }
            }
        }
    }
    patched = apps.patch_namespaced_deployment("web", ns, patch)  # a dict body is sent as a strategic merge patch
    containers = patched.spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("engine", "vllm:2"), ("sidecar", "envoy:1")]
    assert [(e.name, e.value) for e in containers[0].env] == [("A", "1"), ("B", "3"), ("C", None)]
    assert patched.metadata.generation == 2


def test_json_patch(core, ns):
    core.create_namespaced_config_map(
        ns, {"metadata": {"name": "cfg", "annotations": {"aicp.io/model": "llama"}}, "data": {"a": "1"}}
    )
    ops = [
        {"op": "test", "path": "/metadata/annotations/aicp.io~1model", "value": "llama"},
        {"op": "replace", "path": "/metadata/annotations/aicp.io~1model", "value": "qwen"},
        {"op": "add", "path": "/data/b", "value": "2"},
        {"op": "copy", "from": "/data/a", "path": "/data/c"},
        {"op": "move", "from": "/data/a", "path": "/data/d~0e"},
        {"op": "remove", "path": "/data/b"},
    ]
    patched = core.patch_namespaced_config_map("cfg", ns, ops)  # a list body is sent as a JSON patch
    assert patched.metadata.annotations == {"aicp.io/model": "qwen"}
    assert patched.data == {"c": "1", "d~e": "1"}

    status, body = failure(
        core.patch_namespaced_config_map, "cfg", ns, [{"op": "test", "path": "/data/c", "value": "9"}]
    )
    assert (status, body["reason"]) == (422, "Invalid")
    assert failure(core.patch_namespaced_config_map, "cfg", ns, [{"op": "remove", "path": "/data/zzz"}])[0] == 422
    assert (
        failure(core.patch_namespaced_config_map, "cfg", ns, [{"op": "replace", "path": "/x/y", "value": 1}])[0] == 422
    )
    assert core.read_namespaced_config_map("cfg", ns).data == {"c": "1", "d~e": "1"}  # failed patches change nothing


def test_patch_with_a_stale_resource_version_is_409(core, ns):
    created = core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("cfg", ns, {"data": {"a": "2"}})
    stale = {"metadata": {"resourceVersion": created.metadata.resource_version}, "data": {"a": "3"}}
    status, body = failure(core.patch_namespaced_config_map, "cfg", ns, stale)
    assert (status, body["reason"]) == (409, "Conflict")
    ops = [{"op": "replace", "path": "/metadata/resourceVersion", "value": created.metadata.resource_version}]
    assert failure(core.patch_namespaced_config_map, "cfg", ns, ops)[0] == 409


def test_unsupported_patch_content_type_is_415(core, ns):
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}})
    status, body = failure(core.patch_namespaced_config_map, "cfg", ns, {}, _content_type="application/yaml")
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")


def test_server_side_apply_creates_then_merges(apps, ns):
    apply = {"_content_type": "application/apply-patch+yaml", "field_manager": "aicp"}
    created = apps.patch_namespaced_deployment("web", ns, deployment(), **apply)
    assert created.metadata.generation == 1 and created.spec.replicas == 2
    applied = apps.patch_namespaced_deployment("web", ns, {**deployment(), "spec": {"replicas": 3}}, **apply)
    assert applied.spec.replicas == 3 and applied.spec.selector.match_labels == {"app": "web"}
    assert applied.metadata.uid == created.metadata.uid and applied.metadata.generation == 2


# ---- custom resources: the Gateway API ----------------------------------------------------------------------------


def test_gateway_through_custom_objects_api(custom, ns):
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "edge"},
        "spec": {"gatewayClassName": "envoy", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
    }
    created = custom.create_namespaced_custom_object(namespace=ns, body=gateway, **GATEWAY)
    assert created["metadata"]["generation"] == 1 and "status" not in created
    ops = [
        {"op": "add", "path": "/spec/listeners/-", "value": {"name": "https", "port": 443, "protocol": "HTTPS"}},
        {"op": "replace", "path": "/spec/listeners/0/port", "value": 8080},
    ]
    patched = custom.patch_namespaced_custom_object(
        namespace=ns, name="edge", body=ops, _content_type="application/json-patch+json", **GATEWAY
    )
    assert [(x["name"], x["port"]) for x in patched["spec"]["listeners"]] == [("http", 8080), ("https", 443)]
    assert patched["metadata"]["generation"] == 2

    merged = custom.patch_namespaced_custom_object(
        namespace=ns, name="edge", body={"metadata": {"labels": {"tenant": "a"}}}, **GATEWAY
    )
    assert merged["metadata"]["labels"] == {"tenant": "a"} and merged["metadata"]["generation"] == 2

    status, _ = failure(
        custom.patch_namespaced_custom_object,
        namespace=ns,
        name="edge",
        body={"spec": {}},
        _content_type="application/strategic-merge-patch+json",
        **GATEWAY,
    )
    assert status == 415  # as on a real server: custom resources take no strategic merge patches

    accepted = {"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}]}
    custom.patch_namespaced_custom_object_status(namespace=ns, name="edge", body={"status": accepted}, **GATEWAY)
    fetched = custom.get_namespaced_custom_object(namespace=ns, name="edge", **GATEWAY)
    assert fetched["status"] == accepted and fetched["metadata"]["generation"] == 2

    listed = custom.list_namespaced_custom_object(namespace=ns, label_selector="tenant=a", **GATEWAY)
    assert listed["kind"] == "GatewayList" and [g["metadata"]["name"] for g in listed["items"]] == ["edge"]
    deleted = custom.delete_namespaced_custom_object(namespace=ns, name="edge", **GATEWAY)
    assert deleted["metadata"]["name"] == "edge"  # custom resources answer a delete with the object


def test_httproute_and_network_policy(custom, net, ns):
    route = {"kind": "HTTPRoute", "metadata": {"name": "r"}, "spec": {"parentRefs": [{"name": "edge"}]}}
    custom.create_namespaced_custom_object(
        group="gateway.networking.k8s.io", version="v1", namespace=ns, plural="httproutes", body=route
    )
    policy = {"metadata": {"name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    created = net.create_namespaced_network_policy(ns, policy)
    assert created.spec.policy_types == ["Ingress"]
    assert [p.metadata.name for p in net.list_network_policy_for_all_namespaces().items] == ["deny"]


# ---- deletion -----------------------------------------------------------------------------------------------------


def test_delete_answers_a_status(apps, ns):
    apps.create_namespaced_deployment(ns, deployment())
    answer = apps.delete_namespaced_deployment("web", ns, propagation_policy="Foreground")
    assert answer["status"] == "Success" and answer["details"]["name"] == "web"  # v37 types a delete as a dict
    assert failure(apps.read_namespaced_deployment, "web", ns)[0] == 404


def test_delete_options_preconditions(core, ns):
    created = core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("cfg", ns, {"data": {"a": "2"}})
    stale = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(resource_version=created.metadata.resource_version))
    status, body = failure(core.delete_namespaced_config_map, "cfg", ns, body=stale)
    assert (status, body["reason"]) == (409, "Conflict") and "Precondition failed" in body["message"]
    matching = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=created.metadata.uid))
    core.delete_namespaced_config_map("cfg", ns, body=matching)
    assert core.list_namespaced_config_map(ns).items == []


def test_namespace_delete_cascades(core, apps, emulator, ns):
    core.create_namespace({"metadata": {"name": "keep"}})
    apps.create_namespaced_deployment(ns, deployment())
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}})
    core.create_namespaced_config_map("keep", {"metadata": {"name": "c"}})
    core.delete_namespace(ns)
    assert emulator.objects("deployments") == [] and emulator.objects("secrets") == []
    assert [c["metadata"]["name"] for c in emulator.objects("configmaps")] == ["c"]
    assert failure(core.read_namespace, ns)[0] == 404


def test_delete_collection_with_a_label_selector(core, ns):
    for name, tier in (("a", "gpu"), ("b", "gpu"), ("c", "cpu")):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": {"tier": tier}}})
    core.delete_collection_namespaced_config_map(ns, label_selector="tier=gpu")
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["c"]


def test_deleting_an_owner_deletes_its_dependents_unless_orphaned(apps, emulator, ns):
    apps.create_namespaced_deployment(ns, deployment("one"))
    apps.create_namespaced_deployment(ns, deployment("two"))
    emulator.simulate_pods(ns, "one", "ready")
    emulator.simulate_pods(ns, "two", "ready")
    apps.delete_namespaced_deployment("one", ns)
    assert {p["metadata"]["labels"]["app"] for p in emulator.objects("pods")} == {"two"}
    apps.delete_namespaced_deployment("two", ns, propagation_policy="Orphan")
    assert len(emulator.objects("pods", ns, "app=two")) == 2


# ---- fault injection and the request log --------------------------------------------------------------------------


def test_a_500_once_then_success(apps, emulator, ns):
    apps.create_namespaced_deployment(ns, deployment())
    emulator.inject(verb="get", plural="deployments", name="web", status=500)
    status, body = failure(apps.read_namespaced_deployment, "web", ns)
    assert (status, body["reason"]) == (500, "InternalError")
    assert apps.read_namespaced_deployment("web", ns).metadata.name == "web"


def test_an_injected_conflict_and_write_counts(apps, emulator, ns):
    apps.create_namespaced_deployment(ns, deployment())
    emulator.reset_log()
    emulator.inject(verb="patch", plural="deployments", status=409)
    status, body = failure(apps.patch_namespaced_deployment, "web", ns, {"spec": {"replicas": 3}})
    assert (status, body["reason"]) == (409, "Conflict")
    apps.patch_namespaced_deployment("web", ns, {"spec": {"replicas": 3}})
    apps.read_namespaced_deployment("web", ns)
    apps.list_namespaced_deployment(ns)
    apps.delete_namespaced_deployment("web", ns)
    assert emulator.writes() == 3
    assert [(r.verb, r.status) for r in emulator.requests] == [
        ("patch", 409),
        ("patch", 200),
        ("get", 200),
        ("list", 200),
        ("delete", 200),
    ]


def test_faults_match_on_every_given_field_and_can_repeat(core, emulator, ns):
    emulator.inject(verb="create", plural="configmaps", name="doomed", status=403, times=-1)
    assert failure(core.create_namespaced_config_map, ns, {"metadata": {"name": "doomed"}})[0] == 403
    assert failure(core.create_namespaced_config_map, ns, {"metadata": {"name": "doomed"}})[0] == 403
    core.create_namespaced_config_map(ns, {"metadata": {"name": "fine"}})
    emulator.clear_faults()
    core.create_namespaced_config_map(ns, {"metadata": {"name": "doomed"}})


def test_a_429_carries_retry_after(core, emulator, ns):
    emulator.inject(verb="create", status=429)
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    assert raised.value.status == 429 and raised.value.headers["Retry-After"] == "1"
    assert json.loads(raised.value.body)["reason"] == "TooManyRequests"


def test_a_delay_trips_the_client_timeout(apps, emulator, ns):
    apps.create_namespaced_deployment(ns, deployment())
    emulator.inject(verb="patch", status=0, delay=0.3)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):  # a PATCH is not retried by urllib3
        apps.patch_namespaced_deployment("web", ns, {"metadata": {"labels": {"x": "y"}}}, _request_timeout=0.1)
    deadline = time.monotonic() + 2
    while not any(r.verb == "patch" for r in emulator.requests) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emulator.get("deployments", ns, "web")["metadata"]["labels"]["x"] == "y"  # the write still happened

    emulator.inject(verb="get", status=0, delay=0.3)  # urllib3 retries an idempotent GET after a read timeout
    assert apps.read_namespaced_deployment("web", ns, _request_timeout=0.1).metadata.name == "web"
    emulator.inject(verb="get", status=0, delay=0.3, times=-1)
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        apps.read_namespaced_deployment("web", ns, _request_timeout=0.1)
    emulator.clear_faults()


# ---- simulate_pods ------------------------------------------------------------------------------------------------


def _container(pod):
    return pod.status.container_statuses[0]


def _condition(conditions, kind):
    return next(c for c in conditions if c.type == kind)


@pytest.mark.parametrize(
    "state", ["ready", "image_pull", "crash_loop", "oom", "unschedulable", "progressing"], ids=lambda s: s
)
def test_simulate_pods(core, apps, emulator, ns, state):
    created = apps.create_namespaced_deployment(ns, deployment("llama", replicas=2))
    emulator.simulate_pods(ns, "llama", state)
    pods = core.list_namespaced_pod(ns, label_selector="app=llama").items
    assert len(pods) == 2
    for i, pod in enumerate(pods):
        pod_hash = pod.metadata.labels["pod-template-hash"]
        assert pod.metadata.name == f"llama-{pod_hash}-{i}"
        assert pod.metadata.labels["tier"] == "serving"
        owner = pod.metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.uid, owner.controller) == (
            "Deployment",
            "llama",
            created.metadata.uid,
            True,
        )

    pod = pods[0]
    dep = apps.read_namespaced_deployment("llama", ns)
    assert dep.status.observed_generation == dep.metadata.generation
    assert dep.status.replicas == dep.status.updated_replicas == 2
    available = _condition(dep.status.conditions, "Available")
    assert _condition(dep.status.conditions, "Progressing").status == "True"

    if state == "ready":
        assert pod.status.phase == "Running"
        assert _container(pod).ready and _container(pod).state.running is not None
        assert _condition(pod.status.conditions, "Ready").status == "True"
        assert (dep.status.ready_replicas, dep.status.available_replicas, dep.status.unavailable_replicas) == (
            2,
            2,
            None,
        )
        assert available.status == "True"
        return
    assert (dep.status.ready_replicas, dep.status.available_replicas, dep.status.unavailable_replicas) == (
        None,
        None,
        2,
    )
    assert (available.status, available.reason) == ("False", "MinimumReplicasUnavailable")
    if state == "unschedulable":
        assert pod.status.phase == "Pending" and pod.status.container_statuses is None and pod.spec.node_name is None
        scheduled = _condition(pod.status.conditions, "PodScheduled")
        assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
        assert scheduled.message == "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
        return
    status = _container(pod)
    assert not status.ready and status.name == "engine" and status.image == IMAGE
    assert _condition(pod.status.conditions, "Ready").status == "False"
    if state == "image_pull":
        assert pod.status.phase == "Pending"
        assert status.state.waiting.reason == "ImagePullBackOff"
        assert status.state.waiting.message == f'Back-off pulling image "{IMAGE}"'
    elif state == "progressing":
        assert pod.status.phase == "Pending" and status.state.waiting.reason == "ContainerCreating"
    else:
        assert pod.status.phase == "Running" and status.state.waiting.reason == "CrashLoopBackOff"
        assert status.restart_count == 5
        terminated = status.last_state.terminated
        expected = ("OOMKilled", 137) if state == "oom" else ("Error", 1)
        assert (terminated.reason, terminated.exit_code) == expected
    if state != "progressing":
        events = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={pod.metadata.name}").items
        assert [e.type for e in events] == ["Warning"]


def test_simulate_pods_replaces_pods_and_takes_a_message(core, apps, emulator, ns):
    apps.create_namespaced_deployment(ns, deployment("llama", replicas=3))
    emulator.simulate_pods(ns, "llama", "crash_loop")
    emulator.simulate_pods(ns, "llama", "image_pull", count=1, message="pull access denied")
    pods = core.list_namespaced_pod(ns).items
    assert len(pods) == 1
    assert _container(pods[0]).state.waiting.message == "pull access denied"
    assert [e.message for e in core.list_namespaced_event(ns).items] == ["pull access denied"]  # old events are gone

    emulator.simulate_pods(ns, "llama", "ready", count=0)
    assert core.list_namespaced_pod(ns).items == []
    status = apps.read_namespaced_deployment("llama", ns).status
    assert status.replicas is None and _condition(status.conditions, "Available").status == "True"


def test_simulated_pods_follow_the_template(core, apps, emulator, ns):
    apps.create_namespaced_deployment(ns, deployment("llama", replicas=1))
    emulator.simulate_pods(ns, "llama", "ready")
    first = core.list_namespaced_pod(ns).items[0].metadata.labels["pod-template-hash"]
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "engine", "image": "vllm:2"}]}}}}
    apps.patch_namespaced_deployment("llama", ns, patch)
    emulator.simulate_pods(ns, "llama", "ready")
    pod = core.list_namespaced_pod(ns).items[0]
    assert pod.metadata.labels["pod-template-hash"] != first and _container(pod).image == "vllm:2"
    assert apps.read_namespaced_deployment("llama", ns).status.observed_generation == 2


# ---- concurrency, discovery and the inspection helpers ------------------------------------------------------------


def test_concurrent_read_modify_write_keeps_every_change(core, emulator, ns):
    core.create_namespaced_config_map(ns, {"metadata": {"name": "shared"}, "data": {}})
    start = threading.Barrier(8)
    errors = []

    def worker(i: int) -> None:
        api_client = emulator.api_client()
        api = k8s.CoreV1Api(api_client)
        start.wait()
        try:
            for _ in range(100):
                current = api.read_namespaced_config_map("shared", ns)
                current.data = {**(current.data or {}), f"worker-{i}": str(i)}
                try:
                    api.replace_namespaced_config_map("shared", ns, current)
                    return
                except ApiException as error:
                    if error.status != 409:
                        raise
            errors.append(f"worker {i} never succeeded")
        except Exception as error:
            errors.append(repr(error))
        finally:
            api_client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    final = core.read_namespaced_config_map("shared", ns)
    assert final.data == {f"worker-{i}": str(i) for i in range(8)}
    updates = [r.status for r in emulator.requests if r.verb == "update"]
    assert updates.count(200) == 8 and set(updates) <= {200, 409}


def test_discovery_is_enough_for_the_dynamic_client(api, apps, ns, tmp_path):
    assert k8s.VersionApi(api).get_code().major == "1"
    assert [g.name for g in k8s.ApisApi(api).get_api_versions().groups] == [
        "apps",
        "batch",
        "gateway.networking.k8s.io",
        "networking.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
    ]
    resources = k8s.AppsV1Api(api).get_api_resources().resources
    assert {r.name for r in resources} == {"deployments", "deployments/status", "statefulsets", "statefulsets/status"}
    dynamic = DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    deployments = dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    deployments.create(body=deployment("dyn"), namespace=ns)
    assert deployments.get(name="dyn", namespace=ns).metadata.name == "dyn"
    gateways = dynamic.resources.get(api_version="gateway.networking.k8s.io/v1", kind="Gateway")
    assert gateways.namespaced and gateways.get(namespace=ns).items == []


def test_stop_closes_open_connections():
    emu = KubeEmulator().start()
    api_client = emu.api_client()
    api = k8s.CoreV1Api(api_client)
    assert api.list_namespace().items == []  # leaves a keep-alive connection in the pool
    emu.stop()
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        api.list_namespace(_request_timeout=1)
    api_client.close()


def test_inspection_and_seeding_helpers(core, emulator):
    node = emulator.seed(
        {"kind": "Node", "metadata": {"name": "gpu-1", "labels": {"gpu": "h100"}}, "status": {"capacity": {"cpu": "8"}}}
    )
    assert node["metadata"]["generation"] == 1 and node["apiVersion"] == "v1"
    assert core.read_node("gpu-1").status.capacity == {"cpu": "8"}
    emulator.set_status("nodes", None, "gpu-1", {"capacity": {"cpu": "16"}})
    assert core.read_node("gpu-1").status.capacity == {"cpu": "16"}
    assert emulator.get("nodes", None, "gpu-1")["metadata"]["generation"] == 1
    assert emulator.objects("nodes", label_selector="gpu=h100")[0]["metadata"]["name"] == "gpu-1"
    copy = emulator.get("nodes", None, "gpu-1")
    copy["metadata"]["labels"]["gpu"] = "a100"  # copies: changing them changes nothing stored
    assert emulator.get("nodes", None, "gpu-1")["metadata"]["labels"]["gpu"] == "h100"
    assert emulator.get("nodes", None, "nope") is None
