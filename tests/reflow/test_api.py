"""Reflow records through the API (acceptance 3): a tenant's users list, filter and export only their tenant's
records; admins and members review them, viewers cannot; exports are JSONL holding exactly what was approved."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from reflow.models import ReflowRecord
from reflow.services import reflow_ingest
from tenancy.models import AuditEntry
from tests import factories
from tests.conftest import member_of
from tests.telemetry.records import iso, reflow_record

pytestmark = pytest.mark.django_db
SYSTEM = {"role": "system", "content": "You are the task's assistant."}


def capture(task, **overrides) -> ReflowRecord:
    record = reflow_record(task, **overrides)
    assert reflow_ingest(task=task, records=[record]).stored == 1
    return ReflowRecord.objects.get(pk=record["id"])


@pytest.fixture
def task(db):
    return factories.TaskFactory(name="support-bot")


@pytest.fixture
def records(task):
    now = datetime.now(UTC)
    return [
        capture(task, at=now - timedelta(hours=3), output="Paris."),
        capture(task, at=now - timedelta(hours=2), output="Berlin is the capital of Germany."),
        capture(
            task,
            at=now - timedelta(hours=1),
            endpoint="completions",
            messages="Once upon a time",
            output=" there was a GPU.",
        ),
    ]


def export(client, **params) -> list[dict]:
    response = client.get("/api/v1/reflow-records/export/", params)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/jsonl"
    body = b"".join(response.streaming_content).decode()
    assert body == "" or body.endswith("\n")
    return [json.loads(line) for line in body.splitlines()]


def test_a_tenants_users_see_only_their_records(task, records, api_as):
    other = factories.TaskFactory()
    foreign = capture(other, output="secret of another tenant")
    viewer = member_of(task.tenant, "viewer")
    listed = api_as(viewer).get("/api/v1/reflow-records/").json()
    assert {row["id"] for row in listed["results"]} == {str(r.pk) for r in records}
    assert api_as(viewer).get(f"/api/v1/reflow-records/{foreign.pk}/").status_code == 404
    assert export(api_as(viewer), tenant=other.tenant.slug) == []
    assert api_as(member_of(other.tenant, "viewer")).get(f"/api/v1/reflow-records/{records[0].pk}/").status_code == 404


def test_filters_by_task_time_status_and_text(task, records, api_as):
    client = api_as(member_of(task.tenant, "viewer"))
    sibling = factories.TaskFactory(tenant=task.tenant)
    capture(sibling, output="from the sibling")

    def ids(**params) -> set[str]:
        response = client.get("/api/v1/reflow-records/", params)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    every = {str(r.pk) for r in records}
    assert ids(task=task.pk) == every
    assert ids(since=iso(datetime.now(UTC) - timedelta(minutes=150))) - ids(task=sibling.pk) == {
        str(records[1].pk),
        str(records[2].pk),
    }
    assert ids(q="berlin") == {str(records[1].pk)}  # case-insensitive, in the output
    assert ids(q="capital of France", task=task.pk) == {str(records[0].pk), str(records[1].pk)}  # conversation
    assert ids(endpoint="completions") == {str(records[2].pk)}
    assert ids(review_status="pending", task=task.pk) == every
    assert client.get("/api/v1/reflow-records/", {"review_status": "maybe"}).status_code == 400


def test_a_viewer_cannot_review_and_a_member_can(task, records, api_as):
    viewer, member = member_of(task.tenant, "viewer"), member_of(task.tenant, "member")
    url = f"/api/v1/reflow-records/{records[0].pk}/review/"
    refused = api_as(viewer).post(url, {"action": "approve"}, format="json")
    assert refused.status_code == 403
    bulk = api_as(viewer).post(
        "/api/v1/reflow-records/bulk-review/", {"ids": [str(records[0].pk)], "action": "approve"}, format="json"
    )
    assert bulk.status_code == 403
    assert ReflowRecord.objects.filter(review_status="pending").count() == 3
    approved = api_as(member).post(url, {"action": "approve"}, format="json")
    assert approved.status_code == 200
    assert (approved.json()["review_status"], approved.json()["reviewed_by"]) == ("approved", member.username)
    entry = AuditEntry.objects.get(action="reflow.approve")
    assert (entry.tenant, entry.before, entry.after) == (
        task.tenant,
        {"review_status": "pending"},
        {"review_status": "approved"},
    )


def test_an_edit_keeps_the_original_and_approves(task, records, api_as):
    client = api_as(member_of(task.tenant, "admin"))
    url = f"/api/v1/reflow-records/{records[1].pk}/review/"
    edited = client.post(url, {"action": "edit", "edited_output": "Berlin."}, format="json")
    assert edited.status_code == 200
    body = edited.json()
    assert (body["output"], body["edited_output"], body["review_status"]) == (
        "Berlin is the capital of Germany.",
        "Berlin.",
        "approved",
    )
    empty = client.post(url, {"action": "edit", "edited_output": "  "}, format="json")
    assert empty.status_code == 400
    assert empty.json()["code"] == "reflow_edit_empty"
    assert ReflowRecord.objects.get(pk=records[1].pk).edited_output == "Berlin."


def test_bulk_review_is_all_or_nothing(task, records, api_as):
    client = api_as(member_of(task.tenant, "member"))
    foreign = capture(factories.TaskFactory())
    url = "/api/v1/reflow-records/bulk-review/"
    mixed = client.post(url, {"ids": [str(records[0].pk), str(foreign.pk)], "action": "reject"}, format="json")
    assert mixed.status_code == 400
    assert mixed.json()["code"] == "reflow_records_not_found"
    assert str(foreign.pk) in mixed.json()["message"]
    assert not ReflowRecord.objects.exclude(review_status="pending").exists()
    done = client.post(url, {"ids": [str(r.pk) for r in records[:2]], "action": "reject"}, format="json")
    assert done.json() == {"reviewed": 2}
    assert set(ReflowRecord.objects.filter(review_status="rejected").values_list("pk", flat=True)) == {
        records[0].pk,
        records[1].pk,
    }
    edit = client.post(url, {"ids": [str(records[2].pk)], "action": "edit"}, format="json")
    assert edit.status_code == 400


def test_the_chat_export_holds_exactly_the_approved_records(task, records, api_as):
    client = api_as(member_of(task.tenant, "member"))
    review = "/api/v1/reflow-records/{}/review/"
    client.post(review.format(records[0].pk), {"action": "approve"}, format="json")
    client.post(review.format(records[1].pk), {"action": "edit", "edited_output": "Berlin."}, format="json")
    client.post(review.format(records[2].pk), {"action": "reject"}, format="json")
    capture(task, output="still pending")
    lines = export(api_as(member_of(task.tenant, "viewer")))  # viewers export too
    user = {"role": "user", "content": "What is the capital of France?"}
    assert lines == [
        {"messages": [SYSTEM, user, {"role": "assistant", "content": "Paris."}]},
        {"messages": [SYSTEM, user, {"role": "assistant", "content": "Berlin."}]},
    ]
    client.post(review.format(records[2].pk), {"action": "approve"}, format="json")
    completions = export(client, endpoint="completions")
    assert completions == [
        {
            "messages": [
                {"role": "user", "content": "Once upon a time"},
                {"role": "assistant", "content": " there was a GPU."},
            ]
        }
    ]


def test_the_preference_export_pairs_each_edit_with_its_original(task, records, api_as):
    client = api_as(member_of(task.tenant, "member"))
    client.post(f"/api/v1/reflow-records/{records[0].pk}/review/", {"action": "approve"}, format="json")
    client.post(
        f"/api/v1/reflow-records/{records[1].pk}/review/", {"action": "edit", "edited_output": "Berlin."}, format="json"
    )
    lines = export(client, kind="preference")
    assert lines == [
        {
            "prompt": [SYSTEM, {"role": "user", "content": "What is the capital of France?"}],
            "chosen": [{"role": "assistant", "content": "Berlin."}],
            "rejected": [{"role": "assistant", "content": "Berlin is the capital of Germany."}],
        }
    ]
    assert client.get("/api/v1/reflow-records/export/", {"kind": "parquet"}).status_code == 400


def test_records_outlive_their_task_and_keep_its_name(task, records, api_as):
    from inference_jobs.services import task_delete, task_delete_finalize

    task_delete(actor=None, task=task)
    task_delete_finalize(task=task)
    listed = api_as(member_of(task.tenant, "viewer")).get("/api/v1/reflow-records/").json()["results"]
    assert {row["task_name"] for row in listed} == {"support-bot"}
    assert len(listed) == 3
