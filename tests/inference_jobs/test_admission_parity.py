"""SPEC: every rule is enforced identically by the service and the API, and a dry run gives the verdict a
real create would. For each arranged refusal, all three agree on the code, and nothing is created."""

from __future__ import annotations

import pytest

from controlplane.errors import PlatformRuleError
from inference_jobs.models import InferenceTask
from inference_jobs.services import task_create
from tests import factories
from tests.inference_jobs.scenarios import SCENARIOS


def _payload(deployable, fields: dict) -> dict:
    payload = deployable.api_payload()
    for key, value in fields.items():
        payload[key] = getattr(value, "slug", None) or getattr(value, "pk", None) or value
    return payload


@pytest.mark.django_db
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: f"{s.code}-{s.arrange.__name__.strip('_')}")
def test_service_api_and_dry_run_refuse_with_the_same_code(scenario, deployable, api_as, settings):
    for name, value in scenario.settings.items():
        setattr(settings, name, value)
    fields = scenario.arrange(deployable)
    tasks_before = InferenceTask.objects.count()
    actor = factories.PlatformAdminFactory() if scenario.by_platform_admin else deployable.member
    client = api_as(actor)

    dry_run = client.post("/api/v1/tasks/dry-run/", _payload(deployable, fields), format="json")
    assert dry_run.status_code == 200, dry_run.json()
    refused = [v for v in dry_run.json()["verdicts"] if not v["accepted"]]
    assert dry_run.json()["accepted"] is False
    assert refused[0]["rule"] == scenario.code
    assert refused[0]["message"]

    created = client.post("/api/v1/tasks/", _payload(deployable, fields), format="json")
    assert created.status_code == 400, created.json()
    assert created.json()["code"] == scenario.code
    assert created.json()["message"] == refused[0]["message"]

    with pytest.raises(PlatformRuleError) as refusal:
        task_create(actor=actor, **deployable.task_fields(**fields))
    assert refusal.value.code == scenario.code
    assert InferenceTask.objects.count() == tasks_before


@pytest.mark.django_db
def test_dry_run_of_an_acceptable_task_accepts_every_rule_and_creates_nothing(deployable, api_as):
    response = api_as(deployable.member).post(
        "/api/v1/tasks/dry-run/", deployable.api_payload(compute_units_per_instance=None), format="json"
    )
    body = response.json()
    assert response.status_code == 200, body
    assert body["accepted"] is True
    assert {v["rule"] for v in body["verdicts"]} >= {s.code for s in SCENARIOS}
    assert all(v["accepted"] for v in body["verdicts"])
    # A 7B fp16 model on 80 GiB cards: SPEC's table floor of 2 cards.
    assert body["compute_units_per_instance"] == 2 == body["sizing"]["recommended"]
    assert InferenceTask.objects.count() == 0


@pytest.mark.django_db
def test_dry_run_reports_every_refusal_not_only_the_first(deployable, api_as):
    deployable.gateway.is_active = False
    deployable.gateway.save()
    deployable.tenant.max_compute_units = 1
    deployable.tenant.save()
    body = api_as(deployable.member).post("/api/v1/tasks/dry-run/", deployable.api_payload(), format="json").json()
    assert [v["rule"] for v in body["verdicts"] if not v["accepted"]] == [
        "tenant_quota_compute_units",
        "gateway_inactive",
    ]


@pytest.mark.django_db
def test_a_member_cannot_name_a_pool_not_granted_to_the_tenant(deployable, api_as):
    hidden_pool = factories.ComputePoolFactory()
    response = api_as(deployable.member).post(
        "/api/v1/tasks/", deployable.api_payload(compute_pool=hidden_pool.slug), format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "does not exist" in response.json()["fields"]["compute_pool"][0]
