"""The objects a task renders to (pure functions), checked against the Kubernetes schemas, and status reading."""

from __future__ import annotations

import base64
import json

import kubernetes_validate
import pytest
from django.conf import settings

from inference_jobs.choices import TaskStatus
from inference_jobs.ingest_tokens import ingest_token_of
from inference_jobs.orchestrator.kubernetes import render
from inference_jobs.orchestrator.kubernetes.backend import is_subset, observe
from inference_jobs.orchestrator.spec import spec_of
from inference_jobs.services import task_create
from tests.conftest import make_deployable

CLUSTER = render.ClusterSettings()
K8S_VERSION = "1.33.0"


def _spec(accelerator="nvidia-gpu", slug="acme", **fields):
    deployable = make_deployable(slug, accelerator=accelerator)
    task = task_create(actor=deployable.member, **deployable.task_fields(**fields))
    return spec_of(task)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mode", "accelerator"),
    [
        ("normal", "nvidia-gpu"),
        ("high_performance", "nvidia-gpu"),
        ("normal", "iluvatar-bi-v100"),
        ("high_performance", "iluvatar-mr-v100"),
    ],
)
def test_every_built_in_object_is_valid_for_kubernetes(mode, accelerator):
    spec = _spec(accelerator, mode=mode)
    objects = render.render_tenant(spec.tenant, ["nvidia.com/gpu", "iluvatar.ai/gpu"], CLUSTER)
    objects += [obj for obj in render.render_task(spec, CLUSTER) if obj["kind"] != "HTTPRoute"]
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)  # raises on any schema violation


@pytest.mark.django_db
def test_rendering_is_deterministic_and_the_hash_follows_the_spec():
    spec = _spec(system_prompt="Be brief.")
    first, again = render.render_task(spec, CLUSTER), render.render_task(spec, CLUSTER)
    assert first == again
    changed = render.render_task(spec.__class__(**{**spec.__dict__, "system_prompt": "Be long."}), CLUSTER)
    hashes = [obj["metadata"]["annotations"][render.SPEC_HASH] for obj in first]
    new_hashes = [obj["metadata"]["annotations"][render.SPEC_HASH] for obj in changed]
    assert hashes[0] != new_hashes[0]  # the Secret
    assert hashes[1] != new_hashes[1]  # the Deployment: its pods roll to read the new config
    assert hashes[2:] == new_hashes[2:]  # Service and HTTPRoute unchanged


@pytest.mark.django_db
def test_adapter_secret_carries_the_policy_hashed_keys_and_ingest_token():
    from tenancy.services import tenant_api_key_create

    deployable = make_deployable("acme")
    key = tenant_api_key_create(actor=deployable.member, tenant=deployable.tenant, name="app")
    fields = deployable.task_fields(system_prompt="Be brief.", sampling_policy="locked", reflow_enabled=True)
    task = task_create(actor=deployable.member, **fields)
    secret = render.render_secret(spec_of(task), CLUSTER)
    config = json.loads(base64.b64decode(secret["data"]["adapter.json"]))
    assert config["system_prompt"] == "Be brief." and config["sampling_policy"] == "locked"
    assert config["api_keys"] == [{"id": key.credential.pk, "digest": key.credential.digest}]
    assert key.plaintext not in json.dumps(config)  # only the digest travels
    assert config["reflow"]["enabled"] is True
    assert config["ingest"]["token"] == ingest_token_of(task)
    assert config["tokens_per_minute"] == deployable.tenant.max_tokens_per_minute
    assert config["max_request_bytes"] == settings.AICP_MAX_REQUEST_BYTES == 16 << 20
    from serving.adapter.config import parse_config

    assert parse_config(config).max_request_bytes == 16 << 20  # the adapter accepts it as it is


def _pod(containers=(), conditions=(), phase="Running"):
    return {"status": {"phase": phase, "containerStatuses": list(containers), "conditions": list(conditions)}}


@pytest.mark.django_db
def test_observe_maps_pod_states_to_status_and_cause():
    spec = _spec(instances=2)
    deployment = {"metadata": {"generation": 3}, "status": {"observedGeneration": 3, "updatedReplicas": 2}}
    ready = {**deployment, "status": {**deployment["status"], "readyReplicas": 2}}
    assert observe(spec, ready, []).status == TaskStatus.RUNNING
    assert observe(spec, deployment, []).status == TaskStatus.DEPLOYING
    assert observe(spec, None, []).status == TaskStatus.DEPLOYING
    stale = {"metadata": {"generation": 4}, "status": ready["status"]}
    assert observe(spec, stale, []).status == TaskStatus.DEPLOYING  # the controller has not seen generation 4

    pull = {"name": "engine", "state": {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling "x"'}}}
    crash = {"name": "engine", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}  # fmt: skip
    oom = {**crash, "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}
    cases = [
        (_pod([pull], phase="Pending"), "ImagePullBackOff", 'Back-off pulling "x"'),
        (_pod([crash]), "CrashLoopBackOff", "keeps crashing (exit code 1, 4 restarts)"),
        (_pod([oom]), "OOMKilled", "ran out of memory"),
        (_pod(conditions=[unschedulable], phase="Pending"), "Unschedulable", "0/3 nodes"),
    ]
    for pod, reason, message in cases:
        seen = observe(spec, deployment, [pod])
        assert (seen.status, seen.reason) == (TaskStatus.FAILED, reason)
        assert message in seen.message


def test_is_subset_ignores_fields_we_do_not_set_but_not_list_changes():
    assert is_subset({"a": 1, "b": {"c": [1, {"d": 2}]}}, {"a": 1, "x": 0, "b": {"c": [1, {"d": 2, "e": 3}]}})
    assert not is_subset({"b": {"c": [1]}}, {"b": {"c": [1, 2]}})
    assert not is_subset({"a": "1"}, {"a": 1})
    assert not is_subset({"a": 1}, {})
