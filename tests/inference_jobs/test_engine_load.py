"""A task's engine load as users see it: summed over its instances in the task API (detail and list) and on the
task's console page, null until an engine reports, and another tenant's task still a 404."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from inference_jobs.constants import ENGINE_LOAD_FRESH_S
from inference_jobs.models import InferenceTask, TaskEngineLoad
from inference_jobs.services import task_create
from telemetry.services import engine_load_ingest
from tenancy.choices import Role
from tests import factories
from tests.conftest import make_deployable, member_of
from tests.helpers import list_query_counts
from tests.inference_jobs.console import console_as
from tests.telemetry.records import iso

pytestmark = pytest.mark.django_db


@pytest.fixture
def task(deployable):
    return task_create(actor=deployable.member, **deployable.task_fields(name="chat"))


def report(task, instance: str, at: datetime, running=None, waiting=None, usage=None) -> None:
    """What the instance's adapter sends (serving/adapter/engine_load.py), through the ingest service."""
    record = {"instance": instance, "observed_at": iso(at), "requests_running": running,
              "requests_waiting": waiting, "kv_cache_usage": usage}  # fmt: skip
    assert engine_load_ingest(task=task, records=[record]).rejected == []


def test_a_task_no_engine_reported_for_shows_null(deployable, task, api_as):
    body = api_as(deployable.member).get(f"/api/v1/tasks/{task.pk}/").json()
    assert body["engine_load"] is None


def test_the_api_sums_the_instances_queues_and_shows_the_fullest_kv_cache(deployable, task, api_as):
    now = datetime.now(UTC).replace(microsecond=0)
    report(task, "pod-a:1", now - timedelta(seconds=4), running=2, waiting=0, usage=0.13)
    report(task, "pod-b:1", now - timedelta(seconds=1), running=5, waiting=3, usage=0.61)
    body = api_as(deployable.member).get(f"/api/v1/tasks/{task.pk}/").json()
    assert body["engine_load"] == {
        "requests_running": 7, "requests_waiting": 3, "kv_cache_usage": 0.61,
        "observed_at": (now - timedelta(seconds=1)).isoformat().replace("+00:00", "Z"), "instances": 2,
    }  # fmt: skip


def test_an_instance_that_went_quiet_drops_out_and_a_stopped_task_keeps_its_last_figures(deployable, task, api_as):
    now = datetime.now(UTC)
    gone = now - timedelta(seconds=ENGINE_LOAD_FRESH_S + 1)
    TaskEngineLoad.objects.create(task=task, instance="old-pod:1", observed_at=gone, requests_running=40)
    report(task, "pod-b:1", now, running=1, waiting=0, usage=0.2)
    TaskEngineLoad.objects.create(task=task, instance="old-pod:1", observed_at=gone, requests_running=40)  # late
    client = api_as(deployable.member)
    load = client.get(f"/api/v1/tasks/{task.pk}/").json()["engine_load"]
    assert (load["requests_running"], load["instances"]) == (1, 1)

    TaskEngineLoad.objects.filter(task=task).update(observed_at=now - timedelta(hours=3))  # nobody reports any more
    load = client.get(f"/api/v1/tasks/{task.pk}/").json()["engine_load"]
    assert (load["requests_running"], load["instances"]) == (41, 2)  # the last snapshots, dated 3 hours ago


def test_a_figure_no_instance_reports_is_null(deployable, task, api_as):
    report(task, "pod-a:1", datetime.now(UTC), usage=0.5)
    load = api_as(deployable.member).get(f"/api/v1/tasks/{task.pk}/").json()["engine_load"]
    assert (load["requests_running"], load["requests_waiting"], load["kv_cache_usage"]) == (None, None, 0.5)


def test_the_list_shows_each_tasks_load_in_a_constant_number_of_queries(deployable, api_as):
    def fill(rows: int) -> None:
        for n in range(rows - InferenceTask.objects.count()):
            task = factories.TaskFactory(tenant=deployable.tenant, model=deployable.model)
            for i in range(2):
                report(task, f"pod-{i}:1", datetime.now(UTC), running=n, waiting=i, usage=0.1 * i)

    client = api_as(deployable.member)
    few, many = list_query_counts(client, "/api/v1/tasks/", fill)
    assert few == many <= 8
    loads = [task["engine_load"] for task in client.get("/api/v1/tasks/?limit=100").json()["results"]]
    assert len(loads) == 30 and all(load["instances"] == 2 and load["requests_waiting"] == 1 for load in loads)


def test_another_tenants_task_and_its_load_stay_hidden(deployable, task, api_as):
    report(task, "pod-a:1", datetime.now(UTC), running=3, waiting=1, usage=0.3)
    outsider = make_deployable("globex")
    client = api_as(outsider.member)
    assert client.get(f"/api/v1/tasks/{task.pk}/").status_code == 404
    assert client.get("/api/v1/tasks/").json()["results"] == []
    assert console_as(outsider.member).get(reverse("console:task-detail", args=[task.pk])).status_code == 404
    viewer = member_of(deployable.tenant, Role.VIEWER)
    assert api_as(viewer).get(f"/api/v1/tasks/{task.pk}/").json()["engine_load"]["requests_running"] == 3


def test_the_task_page_shows_the_load_and_says_when_none_was_reported(deployable, task):
    page = console_as(deployable.member)
    url = reverse("console:task-detail", args=[task.pk])
    body = page.get(url).content.decode()
    assert "have not reported their load yet" in body and 'id="engine-load-running"' not in body

    now = datetime.now(UTC)
    report(task, "pod-a:1", now - timedelta(seconds=2), running=2, waiting=0, usage=0.13)
    report(task, "pod-b:1", now, running=1, waiting=4, usage=0.42)
    body = page.get(url).content.decode()
    assert '<dd id="engine-load-running">3</dd>' in body
    assert '<dd id="engine-load-waiting">4</dd>' in body
    assert '<dd id="engine-load-kv-cache">42 %' in body
    assert "by 2 instances" in body
