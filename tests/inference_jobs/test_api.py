"""The task API: shapes, actions, permissions, tenant isolation and query counts."""

from __future__ import annotations

import pytest

from inference_jobs.models import InferenceTask, TaskEvent
from inference_jobs.services import task_create
from tenancy.choices import Role
from tests import factories
from tests.conftest import make_deployable, member_of
from tests.helpers import list_query_counts

pytestmark = pytest.mark.django_db


def test_bad_input_names_each_wrong_field_and_stores_nothing(deployable, api_as):
    response = api_as(deployable.member).post(
        "/api/v1/tasks/",
        deployable.api_payload(name="Not A Slug!", temperature=3, top_p=0, instances=0, mode="turbo"),
        format="json",
    )
    body = response.json()
    assert response.status_code == 400
    assert body["code"] == "invalid"
    assert set(body["fields"]) == {"name", "temperature", "top_p", "instances", "mode"}
    assert InferenceTask.objects.count() == 0


def test_malformed_json_is_a_clear_400(deployable, api_as):
    response = api_as(deployable.member).post("/api/v1/tasks/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_actions_scale_stop_start_and_delete_through_the_api(deployable, api_as):
    client = api_as(deployable.member)
    task_id = client.post("/api/v1/tasks/", deployable.api_payload(), format="json").json()["id"]

    scaled = client.post(f"/api/v1/tasks/{task_id}/scale/", {"instances": 3}, format="json").json()
    assert (scaled["instances"], scaled["compute_units"]) == (3, 6)
    assert client.post(f"/api/v1/tasks/{task_id}/stop/").json()["status"] == "stopped"
    assert client.post(f"/api/v1/tasks/{task_id}/start/").json()["status"] == "deploying"
    patched = client.patch(f"/api/v1/tasks/{task_id}/", {"system_prompt": "You are AICP."}, format="json")
    assert patched.json()["system_prompt"] == "You are AICP."
    deleted = client.delete(f"/api/v1/tasks/{task_id}/")
    assert deleted.status_code == 202 and deleted.json()["status"] == "deleting"

    events = client.get(f"/api/v1/tasks/{task_id}/events/").json()
    assert [e["reason"] for e in events["results"]] == [
        "DeletionRequested", "Updated", "Started", "Stopped", "Scaled", "Created",
    ]  # fmt: skip


def test_served_model_name_defaults_to_the_task_name(deployable, api_as):
    body = api_as(deployable.member).post("/api/v1/tasks/", deployable.api_payload(name="helper"), format="json").json()
    assert body["served_model_name"] == "helper"


def test_the_tenant_may_be_left_out_by_a_member_of_one_tenant(deployable, api_as):
    payload = deployable.api_payload()
    del payload["tenant"]
    response = api_as(deployable.member).post("/api/v1/tasks/", payload, format="json")
    assert response.status_code == 201 and response.json()["tenant"] == deployable.tenant.slug


def test_a_viewer_reads_but_cannot_write(deployable, api_as):
    task = factories.TaskFactory(tenant=deployable.tenant, model=deployable.model, compute_pool=deployable.pool)
    viewer = api_as(member_of(deployable.tenant, Role.VIEWER))
    assert viewer.get(f"/api/v1/tasks/{task.pk}/").status_code == 200
    assert viewer.post("/api/v1/tasks/", deployable.api_payload(name="mine"), format="json").status_code == 403
    for action in ("stop", "start", "update-image"):
        assert viewer.post(f"/api/v1/tasks/{task.pk}/{action}/").status_code == 403
    assert viewer.post(f"/api/v1/tasks/{task.pk}/scale/", {"instances": 2}, format="json").status_code == 403
    assert viewer.patch(f"/api/v1/tasks/{task.pk}/", {"temperature": 1}, format="json").status_code == 403
    assert viewer.delete(f"/api/v1/tasks/{task.pk}/").status_code == 403
    assert InferenceTask.objects.get(pk=task.pk).desired_state == "running"


def test_another_tenants_task_answers_404_everywhere(deployable, api_as):
    theirs = factories.TaskFactory(tenant=deployable.tenant, model=deployable.model, compute_pool=deployable.pool)
    outsider = make_deployable("globex")
    client = api_as(outsider.member)
    assert client.get("/api/v1/tasks/").json()["count"] == 0
    for method, suffix in [
        ("get", ""), ("patch", ""), ("delete", ""), ("get", "events/"),
        ("post", "stop/"), ("post", "start/"), ("post", "scale/"), ("post", "update-image/"),
    ]:  # fmt: skip
        response = getattr(client, method)(f"/api/v1/tasks/{theirs.pk}/{suffix}", {"instances": 2}, format="json")
        assert response.status_code == 404, (method, suffix, response.status_code)
        assert response.json()["code"] == "not_found"
    assert InferenceTask.objects.get(pk=theirs.pk).desired_state == "running"


def test_a_member_cannot_create_in_another_tenant_nor_with_its_model(deployable, api_as):
    outsider = make_deployable("globex")
    client = api_as(outsider.member)
    into_theirs = client.post("/api/v1/tasks/", deployable.api_payload(), format="json")
    assert into_theirs.status_code == 400 and "tenant" in into_theirs.json()["fields"]
    their_model = client.post("/api/v1/tasks/", outsider.api_payload(model=deployable.model.pk), format="json")
    assert their_model.status_code == 400 and "model" in their_model.json()["fields"]
    assert InferenceTask.objects.count() == 0


def test_a_platform_admin_sees_every_tenants_tasks(deployable, api_as, platform_admin):
    factories.TaskFactory(tenant=deployable.tenant, model=deployable.model)
    other = make_deployable("globex")
    factories.TaskFactory(tenant=other.tenant, model=other.model)
    assert api_as(platform_admin).get("/api/v1/tasks/").json()["count"] == 2
    assert api_as(deployable.member).get("/api/v1/tasks/").json()["count"] == 1


def test_filters(deployable, api_as):
    factories.TaskFactory(tenant=deployable.tenant, model=deployable.model, name="alpha", status="running")
    factories.TaskFactory(tenant=deployable.tenant, model=deployable.model, name="beta", status="failed")
    client = api_as(deployable.member)
    assert [t["name"] for t in client.get("/api/v1/tasks/?status=failed").json()["results"]] == ["beta"]
    assert [t["name"] for t in client.get("/api/v1/tasks/?q=alp").json()["results"]] == ["alpha"]
    assert client.get("/api/v1/tasks/?status=bogus").status_code == 400


@pytest.mark.parametrize("viewer", ["member", "platform_admin"])
def test_listing_tasks_runs_a_constant_number_of_queries(deployable, api_as, platform_admin, viewer):
    user = platform_admin if viewer == "platform_admin" else deployable.member

    def fill(rows: int) -> None:
        missing = rows - InferenceTask.objects.count()
        factories.TaskFactory.create_batch(missing, tenant=deployable.tenant, model=deployable.model)

    few, many = list_query_counts(api_as(user), "/api/v1/tasks/", fill)
    assert few == many <= 8


def test_listing_a_tasks_events_runs_a_constant_number_of_queries(deployable, api_as):
    task = task_create(actor=deployable.member, **deployable.task_fields())

    def fill(rows: int) -> None:
        for _ in range(rows - task.events.count()):
            TaskEvent.objects.create(task=task, reason="Scaled", actor=deployable.member)

    few, many = list_query_counts(api_as(deployable.member), f"/api/v1/tasks/{task.pk}/events/", fill)
    assert few == many <= 8
