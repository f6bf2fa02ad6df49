"""The ingest API (acceptance 1): idempotent by record id, malformed records reported without losing the others,
tokens checked, rotated and confined to their task."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection

from inference_jobs.services import task_delete, task_delete_finalize
from reflow.models import ReflowRecord
from telemetry.choices import Resolution
from telemetry.models import LatencyRollup, RequestMetric, UsageHour
from tests import factories
from tests.conftest import member_of
from tests.telemetry.records import Adapter, metric, reflow_record

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("kind", ["metrics", "reflow"])
def test_a_batch_posted_twice_stores_each_record_once(task, adapter, kind):
    make = metric if kind == "metrics" else reflow_record
    records = [make(task) for _ in range(5)]
    first = adapter.post(kind, records)
    assert first.status_code == 200, first.content
    assert first.json() == {"received": 5, "stored": 5, "duplicates": 0, "rejected": []}
    again = adapter.post(kind, records)
    assert again.status_code == 200
    assert again.json() == {"received": 5, "stored": 0, "duplicates": 5, "rejected": []}
    stored = RequestMetric if kind == "metrics" else ReflowRecord
    assert stored.objects.filter(task_id=task.pk).count() == 5


def test_a_re_sent_batch_adds_nothing_to_roll_ups_or_usage(task, adapter):
    records = [metric(task, input_tokens=10, output_tokens=7) for _ in range(4)]
    records.append(dict(records[0]))  # the same record twice in one batch counts once too
    for _ in range(3):
        assert adapter.post("metrics", records).status_code == 200
    hour = LatencyRollup.objects.get(task_id=task.pk, resolution=Resolution.HOUR)
    day = LatencyRollup.objects.get(task_id=task.pk, resolution=Resolution.DAY)
    assert (hour.requests, hour.input_tokens, hour.output_tokens) == (4, 40, 28)
    assert (day.requests, sum(day.ttft_hist.values())) == (4, 4)
    usage = UsageHour.objects.get(task_id=task.pk)
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (4, 40, 28)


def test_one_malformed_record_is_reported_and_the_others_are_stored(task, adapter):
    records = [metric(task) for _ in range(4)]
    records[2]["ttft_ms"] = "fast"
    records[3]["started_at"] = "yesterday"
    response = adapter.post("metrics", records)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "ingest_records_rejected"
    assert (body["received"], body["stored"], body["duplicates"]) == (4, 2, 0)
    assert [(r["index"], r["id"], sorted(r["errors"])) for r in body["rejected"]] == [
        (2, records[2]["id"], ["ttft_ms"]),
        (3, records[3]["id"], ["started_at"]),
    ]
    assert "records[2].ttft_ms" in body["fields"]
    assert "2 of 4 records were rejected" in body["message"]
    stored = {str(pk.hex) for pk in RequestMetric.objects.values_list("id", flat=True)}
    assert stored == {records[0]["id"], records[1]["id"]}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "not-a-uuid"),
        ("status", 700),
        ("e2e_ms", None),
        ("e2e_ms", -1),
        ("stream", "yes"),
        ("itl_hist", {"x": 3}),
        ("started_at", "2026-11-21T10:00:00"),  # no UTC offset
        ("started_at", "2999-01-01T00:00:00Z"),
        ("output_tokens", 1.5),
    ],
)
def test_each_malformed_field_is_named(task, adapter, field, value):
    record = metric(task, **{field: value})
    response = adapter.post("metrics", [record, metric(task)])
    assert response.status_code == 422
    assert list(response.json()["rejected"][0]["errors"]) == [field]
    assert RequestMetric.objects.count() == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("output", "Par\x00is", "Null characters are not allowed."),
        ("finish_reason", "\ud800", "Unpaired surrogate characters (U+D800 to U+DFFF) are not allowed."),
        ("parameters", {"stop": ["\x00"]}, "stop[0]: Null characters are not allowed."),
        ("parameters", {"temperature": float("nan")}, "temperature: Numbers must be finite (no NaN or Infinity)."),
        ("messages", [{"role": "user", "content": "hi\x00"}], "[0].content: Null characters are not allowed."),
        ("started_at", "0001-01-01T00:00:00+01:00", "The time must fall within the years 1 to 9999 in UTC."),
    ],
)
def test_a_reflow_record_no_column_can_hold_is_rejected_alone(task, adapter, field, value, message):
    """What PostgreSQL would refuse mid-insert (and fail the whole batch with a 500) is one record's verdict."""
    response = adapter.post("reflow", [reflow_record(task, **{field: value}), reflow_record(task)])
    assert response.status_code == 422, response.content
    assert response.json()["rejected"][0]["errors"] == {field: message}
    assert ReflowRecord.objects.count() == 1


def test_a_record_time_with_an_offset_of_20_hours_is_stored_as_its_utc_instant(task, adapter):
    started = "2026-12-02T10:00:00+20:00"  # RFC 3339 allows it; PostgreSQL takes offsets up to 15:59 only
    response = adapter.post("reflow", [reflow_record(task, started_at=started, finished_at=None)])
    assert response.status_code == 200, response.content
    assert ReflowRecord.objects.get().started_at.isoformat() == "2026-12-01T14:00:00+00:00"


def test_a_record_that_is_not_an_object_is_rejected_alone(task, adapter):
    response = adapter.post("reflow", ["oops", reflow_record(task), reflow_record(task, messages="not a list")])
    assert response.status_code == 422
    assert [(r["index"], list(r["errors"])) for r in response.json()["rejected"]] == [
        (0, ["record"]),
        (2, ["messages"]),
    ]
    assert ReflowRecord.objects.count() == 1


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer aicp_it_1_nope", "Token whatever", "Bearer aicp_pat_abc_def"],
)
def test_a_missing_or_wrong_token_is_refused(task, header):
    adapter = Adapter("x", task.pk)
    adapter.client.credentials(**({"HTTP_AUTHORIZATION": header} if header else {}))
    response = adapter.post("metrics", [metric(task)])
    assert response.status_code == 401
    assert response.json()["code"] == "ingest_token_invalid"
    assert RequestMetric.objects.count() == 0


def test_a_token_with_the_right_task_id_and_a_wrong_secret_is_refused(task):
    forged = task.ingest_token[:-4] + ("AAAA" if not task.ingest_token.endswith("AAAA") else "BBBB")
    response = Adapter(forged, task.pk).post("metrics", [metric(task)])
    assert response.status_code == 401


def test_a_rotated_token_is_refused_and_the_new_one_works(task, adapter, api_as):
    member = member_of(task.tenant)
    rotated = api_as(member).post(f"/api/v1/tasks/{task.pk}/rotate-ingest-token/")
    assert rotated.status_code == 200
    new_token = rotated.json()["ingest_token"]
    assert new_token.startswith(f"aicp_it_{task.pk}_") and new_token != task.ingest_token
    assert adapter.post("metrics", [metric(task)]).status_code == 401
    assert Adapter(new_token, task.pk).post("metrics", [metric(task)]).status_code == 200
    task.refresh_from_db()
    assert new_token not in json.dumps(list(type(task).objects.filter(pk=task.pk).values()), default=str)
    assert task.events.filter(reason="IngestTokenRotated").exists()


def test_a_token_cannot_write_into_another_task_or_tenant(task, adapter):
    other = factories.TaskFactory()  # another tenant's task
    sibling = factories.TaskFactory(tenant=task.tenant)  # the same tenant's other task
    for target in (other, sibling):
        response = adapter.post("metrics", [metric(target)], task_id=target.pk)
        assert response.status_code == 403
        assert response.json()["code"] == "ingest_task_mismatch"
    # Records that name another task or tenant inside a batch for the token's own task are rejected.
    response = adapter.post("reflow", [reflow_record(other), reflow_record(task, tenant_id=other.tenant_id)])
    assert response.status_code == 422
    assert [sorted(r["errors"]) for r in response.json()["rejected"]] == [["task_id", "tenant_id"], ["tenant_id"]]
    assert RequestMetric.objects.count() == ReflowRecord.objects.count() == 0


def test_a_deleting_task_still_delivers_and_a_deleted_ones_token_is_refused(task, adapter):
    task_delete(actor=None, task=task)  # its pods may still be draining their spools
    assert adapter.post("metrics", [metric(task)]).status_code == 200
    task_delete_finalize(task=task)
    assert adapter.post("metrics", [metric(task)]).status_code == 401
    assert RequestMetric.objects.filter(task_id=task.pk).count() == 1  # usage outlives the task


def test_batches_are_bounded(task, adapter, settings):
    response = adapter.post("metrics", [metric(task) for _ in range(1001)])
    assert response.status_code == 413
    assert response.json()["code"] == "ingest_batch_too_large"
    settings.AICP_INGEST_MAX_BODY_BYTES = 2000
    response = adapter.post("metrics", [metric(task) for _ in range(10)])
    assert response.status_code == 413
    assert RequestMetric.objects.count() == 0


@pytest.mark.parametrize(
    "body", [b"{not json", b"[]", b'{"task_id": 1}', b'{"records": {}}', b"[" * 100_000 + b"]" * 100_000]
)
def test_a_malformed_body_is_a_400(task, adapter, body):
    body = body.replace(b'"task_id": 1', f'"task_id": {task.pk}'.encode())
    response = adapter.client.generic("POST", "/api/v1/ingest/metrics/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_the_ingest_token_is_shown_once_at_creation_and_never_listed(deployable, api_as):
    client = api_as(deployable.member)
    created = client.post("/api/v1/tasks/", deployable.api_payload(), format="json")
    assert created.status_code == 201
    token = created.json()["ingest_token"]
    assert token.startswith(f"aicp_it_{created.json()['id']}_")
    detail = client.get(f"/api/v1/tasks/{created.json()['id']}/")
    assert "ingest_token" not in detail.json()
    assert token not in json.dumps(client.get("/api/v1/tasks/").json())
    assert token not in json.dumps(client.get("/api/v1/tasks/" + str(created.json()["id"]) + "/events/").json())
    assert Adapter(token, created.json()["id"]).post("metrics", []).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_same_batch_sent_by_four_adapters_at_once_is_stored_and_counted_once():
    task = factories.TaskFactory()
    records = [metric(task, input_tokens=3, output_tokens=5) for _ in range(200)]
    answers, barrier = [], threading.Barrier(4)

    def send() -> None:
        try:
            barrier.wait()
            answers.append(Adapter(task.ingest_token, task.pk).post("metrics", records).json()["stored"])
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [0, 0, 0, 200]
    assert RequestMetric.objects.count() == 200
    hour = LatencyRollup.objects.get(task_id=task.pk, resolution=Resolution.HOUR)
    assert (hour.requests, hour.input_tokens, hour.output_tokens) == (200, 600, 1000)
    assert UsageHour.objects.get(task_id=task.pk).requests == 200
