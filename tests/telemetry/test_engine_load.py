"""The engine-load ingest (``POST /api/v1/ingest/engine-load/``): the task's ingest token only, each malformed field
named, the newest snapshot per instance kept whatever order snapshots arrive in."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from inference_jobs.constants import ENGINE_LOAD_FRESH_S
from inference_jobs.models import TaskEngineLoad
from inference_jobs.services import task_delete, task_delete_finalize
from tests import factories
from tests.telemetry.records import Adapter, iso
from tests.telemetry.records import engine_load as snapshot

pytestmark = pytest.mark.django_db

KIND = "engine-load"


def stored(task) -> dict[str, tuple]:
    rows = TaskEngineLoad.objects.filter(task=task)
    return {r.instance: (r.requests_running, r.requests_waiting, r.kv_cache_usage) for r in rows}


def test_a_snapshot_is_stored_for_its_instance(task, adapter):
    response = adapter.post(KIND, [snapshot(requests_running=3, requests_waiting=1, kv_cache_usage=0.42)])
    assert response.status_code == 200, response.content
    assert response.json() == {"received": 1, "stored": 1, "duplicates": 0, "rejected": []}
    assert stored(task) == {"chat-7-abc:1": (3, 1, 0.42)}


def test_the_newest_snapshot_wins_whatever_order_they_arrive_in(task, adapter):
    now = datetime.now(UTC)
    assert adapter.post(KIND, [snapshot(at=now - timedelta(seconds=5), requests_running=1)]).json()["stored"] == 1
    assert adapter.post(KIND, [snapshot(at=now, requests_running=4)]).json()["stored"] == 1
    late = adapter.post(KIND, [snapshot(at=now - timedelta(seconds=10), requests_running=9)])  # delivered late
    assert late.json() == {"received": 1, "stored": 0, "duplicates": 1, "rejected": []}
    again = adapter.post(KIND, [snapshot(at=now, requests_running=7)])  # the same moment again
    assert again.json()["stored"] == 0
    in_one_batch = [snapshot(at=now + timedelta(seconds=2), requests_running=5),
                    snapshot(at=now + timedelta(seconds=1), requests_running=6)]  # fmt: skip
    assert adapter.post(KIND, in_one_batch).json() == {"received": 2, "stored": 1, "duplicates": 1, "rejected": []}
    assert stored(task) == {"chat-7-abc:1": (5, 0, 0.13)}


def test_instances_are_kept_apart_and_one_silent_for_a_minute_is_forgotten(task, adapter):
    now = datetime.now(UTC)
    adapter.post(KIND, [snapshot(instance="pod-a:1", at=now - timedelta(seconds=ENGINE_LOAD_FRESH_S + 5))])
    adapter.post(KIND, [snapshot(instance="pod-b:1", at=now - timedelta(seconds=3))])
    assert set(stored(task)) == {"pod-b:1"}  # pod-a's last word is older than the window before pod-b's
    adapter.post(KIND, [snapshot(instance="pod-c:1", at=now - timedelta(seconds=2))])
    assert set(stored(task)) == {"pod-b:1", "pod-c:1"}


def test_a_figure_the_engine_does_not_expose_is_stored_as_null(task, adapter):
    response = adapter.post(KIND, [snapshot(requests_running=None, requests_waiting=None)])
    assert response.status_code == 200
    partial = {k: v for k, v in snapshot().items() if k != "kv_cache_usage"}
    assert adapter.post(KIND, [{**partial, "observed_at": iso(datetime.now(UTC))}]).status_code == 200
    assert stored(task) == {"chat-7-abc:1": (2, 0, None)}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("instance", None, "is required"),
        ("instance", "", "must not be blank"),
        ("instance", "x" * 201, "must be at most 200 characters, got 201"),
        ("instance", "pod\x00", "Null characters are not allowed."),
        ("observed_at", None, "is required"),
        ("observed_at", "2026-11-21T10:00:00", "must carry a UTC offset (e.g. 2026-11-21T10:00:00Z)"),
        ("observed_at", "2999-01-01T00:00:00Z", "is more than 10 minutes in the future"),
        ("observed_at", "now", 'must be an ISO 8601 time, got "now"'),
        ("requests_running", -1, "must be between 0 and 2147483647, got -1"),
        ("requests_running", 2**31, "must be between 0 and 2147483647, got 2147483648"),
        ("requests_waiting", 1.5, "must be an integer, got 1.5"),
        ("requests_waiting", "3", 'must be an integer, got "3"'),
        ("kv_cache_usage", 1.5, "must be between 0 and 1, got 1.5"),
        ("kv_cache_usage", -0.01, "must be between 0 and 1, got -0.01"),
        ("kv_cache_usage", True, "must be a number between 0 and 1, got true"),
        ("kv_cache_usage", "13%", 'must be a number between 0 and 1, got "13%"'),
    ],
)
def test_each_malformed_field_is_a_422_naming_it_and_the_good_snapshots_are_stored(
    task, adapter, field, value, message
):
    bad = snapshot(**{"instance": "pod-bad:1", field: value})
    response = adapter.post(KIND, [snapshot(instance="pod-good:1"), bad])
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "ingest_records_rejected"
    assert body["rejected"] == [{"index": 1, "id": None, "errors": {field: message}}]
    assert body["fields"] == {f"records[1].{field}": [message]}
    assert set(stored(task)) == {"pod-good:1"}


def test_a_snapshot_that_is_not_an_object_and_a_malformed_body_are_refused(task, adapter):
    response = adapter.post(KIND, ["oops"])
    assert response.status_code == 422
    assert response.json()["rejected"] == [{"index": 0, "id": None, "errors": {"record": "must be a JSON object"}}]
    for body in (b"{not json", b"[]", f'{{"task_id": {task.pk}}}'.encode(), b'{"records": {}}'):
        answer = adapter.client.generic("POST", "/api/v1/ingest/engine-load/", body, content_type="application/json")
        assert answer.status_code == 400, body
        assert answer.json()["code"] == "invalid"
    assert adapter.post(KIND, [snapshot() for _ in range(1001)]).status_code == 413
    assert stored(task) == {}


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer aicp_it_1_nope", "Bearer aicp_pat_abc_def"])
def test_a_missing_or_wrong_token_is_refused(task, header):
    adapter = Adapter("x", task.pk)
    adapter.client.credentials(**({"HTTP_AUTHORIZATION": header} if header else {}))
    response = adapter.post(KIND, [snapshot()])
    assert response.status_code == 401
    assert response.json()["code"] == "ingest_token_invalid"
    assert TaskEngineLoad.objects.count() == 0


def test_a_token_writes_only_into_its_own_task(task, adapter):
    for other in (factories.TaskFactory(), factories.TaskFactory(tenant=task.tenant)):
        response = adapter.post(KIND, [snapshot()], task_id=other.pk)
        assert response.status_code == 403
        assert response.json()["code"] == "ingest_task_mismatch"
    assert TaskEngineLoad.objects.count() == 0


def test_a_deleted_tasks_snapshots_go_with_it(task, adapter):
    adapter.post(KIND, [snapshot()])
    task_delete(actor=None, task=task)
    assert adapter.post(KIND, [snapshot(instance="draining:1")]).status_code == 200  # its pods are still going
    task_delete_finalize(task=task)
    assert TaskEngineLoad.objects.count() == 0
    assert adapter.post(KIND, [snapshot()]).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_snapshots_of_one_instance_sent_at_once_leave_the_newest():
    task = factories.TaskFactory()
    now = datetime.now(UTC)
    sends = [snapshot(at=now - timedelta(seconds=i), requests_running=10 - i) for i in range(6)]
    barrier = threading.Barrier(len(sends))
    answers = []

    def send(record) -> None:
        try:
            barrier.wait()
            answers.append(Adapter(task.ingest_token, task.pk).post(KIND, [record]).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(record,)) for record in sends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * len(sends)
    assert stored(task) == {"chat-7-abc:1": (10, 0, 0.13)}


@pytest.mark.django_db(transaction=True)
def test_instances_reporting_at_once_after_an_outage_never_fail():
    """Each one's fresh snapshot makes the others' stored rows stale: without the task's lock, two deliveries
    would each write their own row and then wait to delete the other's, and PostgreSQL would abort one."""
    task = factories.TaskFactory()
    instances = [f"pod-{i}:1" for i in range(4)]
    answers = []

    def send(barrier: threading.Barrier, instance: str, at: datetime) -> None:
        try:
            barrier.wait()
            answers.append(Adapter(task.ingest_token, task.pk).post(KIND, [snapshot(instance=instance, at=at)]))
        finally:
            connection.close()

    rounds = 8
    for _ in range(rounds):
        before_outage = datetime.now(UTC) - timedelta(seconds=ENGINE_LOAD_FRESH_S * 2)
        for instance in instances:
            TaskEngineLoad.objects.update_or_create(
                task=task, instance=instance, defaults={"observed_at": before_outage}
            )
        barrier, now = threading.Barrier(len(instances)), datetime.now(UTC)
        threads = [threading.Thread(target=send, args=(barrier, i, now)) for i in instances]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [a.status_code for a in answers] == [200] * len(instances) * rounds, [a.content for a in answers]
    assert set(stored(task)) == set(instances)
