"""SPEC's platform rules at their boundaries: the last admitted case and the first refused one."""

from __future__ import annotations

import pytest

from controlplane.errors import PlatformRuleError
from inference_jobs.models import InferenceTask
from inference_jobs.services import task_create, task_scale, task_start, task_stop
from tests import factories
from tests.conftest import make_deployable
from tests.inference_jobs.conftest import seed_tasks

pytestmark = pytest.mark.django_db


def refused(code: str, **kwargs):
    with pytest.raises(PlatformRuleError) as refusal:
        task_create(**kwargs)
    assert refusal.value.code == code, refusal.value.message
    return refusal.value


def test_the_500th_task_is_accepted_and_the_501st_refused(deployable, api_as):
    seed_tasks(499)
    client = api_as(deployable.member)
    accepted = client.post("/api/v1/tasks/", deployable.api_payload(name="five-hundredth"), format="json")
    assert accepted.status_code == 201, accepted.json()
    assert InferenceTask.objects.count() == 500

    refusal = client.post("/api/v1/tasks/", deployable.api_payload(name="one-too-many"), format="json")
    assert refusal.status_code == 400
    assert refusal.json()["code"] == "platform_task_limit"
    assert "500" in refusal.json()["message"]
    assert InferenceTask.objects.count() == 500


def test_the_16th_port_of_a_gateway_is_accepted_and_the_17th_refused(deployable, api_as):
    factories.TaskFactory.create_batch(15, gateway=deployable.gateway)
    client = api_as(deployable.member)
    sixteenth = client.post("/api/v1/tasks/", deployable.api_payload(name="sixteenth"), format="json")
    assert sixteenth.status_code == 201, sixteenth.json()
    assert sixteenth.json()["port"] == 30015
    assert sixteenth.json()["access_url"] == "http://gw.example.com:30015/v1"

    seventeenth = client.post("/api/v1/tasks/", deployable.api_payload(name="seventeenth"), format="json")
    assert seventeenth.status_code == 400
    assert seventeenth.json()["code"] == "gateway_ports_exhausted"
    assert seventeenth.json()["fields"] == {"gateway": [seventeenth.json()["message"]]}

    other_gateway = factories.GatewayFactory(port_range_start=31000, port_range_end=31015)
    moved = client.post(
        "/api/v1/tasks/", deployable.api_payload(name="seventeenth", gateway=other_gateway.slug), format="json"
    )
    assert moved.status_code == 201
    assert moved.json()["port"] == 31000


def test_a_task_name_is_unique_within_a_tenant_but_not_across_tenants(deployable):
    task_create(actor=deployable.member, **deployable.task_fields(name="chat"))
    refused("task_name_taken", actor=deployable.member, **deployable.task_fields(name="chat"))

    other = make_deployable("globex", pool=deployable.pool, gateway=deployable.gateway)
    task = task_create(actor=other.member, **other.task_fields(name="chat"))
    assert task.tenant == other.tenant


@pytest.mark.parametrize(
    ("accelerator", "mode", "accepted"),
    [
        ("nvidia-gpu", "normal", True),
        ("nvidia-gpu", "high_performance", True),
        ("iluvatar-mr-v100", "normal", True),
        ("iluvatar-mr-v100", "high_performance", True),
        ("iluvatar-bi-v100", "normal", True),
        ("iluvatar-bi-v100", "high_performance", False),
        ("cpu", "normal", True),
        ("cpu", "high_performance", True),  # where vLLM's CPU runtime exists (the runtime rule checks that)
    ],
)
def test_modes_each_accelerator_runs(accelerator, mode, accepted):
    d = make_deployable(accelerator=accelerator)
    fields = d.task_fields(mode=mode)
    if accepted:
        task = task_create(actor=d.member, **fields)
        assert (task.runtime_image_version.image.mode, task.runtime_image_version.image.vendor) == (
            mode,
            d.pool.accelerator_type.vendor,
        )
    else:
        refusal = refused("mode_not_supported_by_pool", actor=d.member, **fields)
        assert refusal.field == "mode"


@pytest.mark.parametrize(
    ("encrypted", "compressed", "mode", "code"),
    [
        (True, False, "normal", "normal_mode_model_unsupported"),
        (False, True, "normal", "normal_mode_model_unsupported"),
        (True, True, "normal", "normal_mode_model_unsupported"),
        (True, True, "high_performance", None),
        (False, False, "normal", None),
    ],
)
def test_normal_mode_refuses_encrypted_and_compressed_models(deployable, encrypted, compressed, mode, code):
    model = factories.ModelFactory(tenant=deployable.tenant, encrypted=encrypted, compressed=compressed)
    fields = deployable.task_fields(model=model, mode=mode)
    if code is None:
        assert task_create(actor=deployable.member, **fields).model == model
    else:
        message = refused(code, actor=deployable.member, **fields).message
        assert ("encrypted" in message) == encrypted and ("compressed" in message) == compressed


def test_tenant_task_quota_admits_up_to_the_quota(deployable):
    deployable.tenant.max_tasks = 2
    deployable.tenant.save()
    for name in ("one", "two"):
        task_create(actor=deployable.member, **deployable.task_fields(name=name))
    refused("tenant_quota_tasks", actor=deployable.member, **deployable.task_fields(name="three"))


def test_tenant_compute_quota_admits_exactly_the_quota(deployable):
    deployable.tenant.max_compute_units = 6
    deployable.tenant.save()
    task_create(actor=deployable.member, **deployable.task_fields(name="a", compute_units_per_instance=2, instances=2))
    refused(
        "tenant_quota_compute_units",
        actor=deployable.member,
        **deployable.task_fields(name="b", compute_units_per_instance=3),
    )
    task_create(actor=deployable.member, **deployable.task_fields(name="b", compute_units_per_instance=2))


def test_pool_capacity_counts_every_tenant_and_admits_exactly_the_capacity(deployable):
    deployable.pool.capacity_compute_units = 8
    deployable.pool.save()
    neighbour = make_deployable("globex", pool=deployable.pool, gateway=deployable.gateway)
    task_create(actor=neighbour.member, **neighbour.task_fields(compute_units_per_instance=4))
    refused("pool_capacity_exceeded", actor=deployable.member, **deployable.task_fields(compute_units_per_instance=8))
    task_create(actor=deployable.member, **deployable.task_fields(compute_units_per_instance=4))
    refused(
        "pool_capacity_exceeded",
        actor=deployable.member,
        **deployable.task_fields(name="more", compute_units_per_instance=1),
    )


def test_a_grant_share_caps_the_tenant_in_that_pool(deployable):
    deployable.pool.grants.update(max_compute_units=4)
    task_create(actor=deployable.member, **deployable.task_fields(compute_units_per_instance=4))
    refused(
        "pool_grant_share_exceeded",
        actor=deployable.member,
        **deployable.task_fields(name="more", compute_units_per_instance=1),
    )


def test_stopped_tasks_give_back_compute_and_starting_needs_it_again(deployable):
    deployable.tenant.max_compute_units = 4
    deployable.tenant.save()
    first = task_create(actor=deployable.member, **deployable.task_fields(name="first", compute_units_per_instance=4))
    task_stop(actor=deployable.member, task=first)
    second = task_create(actor=deployable.member, **deployable.task_fields(name="second", compute_units_per_instance=4))
    with pytest.raises(PlatformRuleError) as refusal:
        task_start(actor=deployable.member, task=first)
    assert refusal.value.code == "tenant_quota_compute_units"
    task_stop(actor=deployable.member, task=second)
    assert task_start(actor=deployable.member, task=first).status == "deploying"


def test_scaling_is_held_to_quota_and_capacity(deployable):
    deployable.tenant.max_compute_units = 8
    deployable.tenant.save()
    task = task_create(actor=deployable.member, **deployable.task_fields(compute_units_per_instance=2))
    assert task_scale(actor=deployable.member, task=task, instances=4).compute_units == 8
    with pytest.raises(PlatformRuleError) as refusal:
        task_scale(actor=deployable.member, task=task, instances=5)
    assert refusal.value.code == "tenant_quota_compute_units"
    task.refresh_from_db()
    assert task.instances == 4
