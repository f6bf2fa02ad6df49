"""The console's task pages: who sees what, the live list, a task's page with its access, latency and usage
sections, and its actions (the create form: test_views_create.py; the playground: test_views_playground.py)."""

from __future__ import annotations

import html
import re
from collections import Counter
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from inference_jobs.models import InferenceTask
from inference_jobs.services import task_create
from telemetry.services import metrics_ingest
from tenancy.choices import Role
from tenancy.models import AuditEntry
from tenancy.services import tenant_api_key_create
from tests import factories
from tests.conftest import make_deployable, member_of
from tests.helpers import page_query_counts
from tests.inference_jobs.console import console_as
from tests.telemetry.records import metric

pytestmark = pytest.mark.django_db


@pytest.fixture
def task(deployable):
    return task_create(actor=deployable.member, **deployable.task_fields(name="chat"))


# --- the list -------------------------------------------------------------------------------------------------


def test_the_list_shows_the_users_tasks_with_port_instances_and_status(deployable, task):
    outsider = make_deployable("globex")
    theirs = factories.TaskFactory(tenant=outsider.tenant, model=outsider.model, name="secret-plan")

    page = console_as(deployable.member).get(reverse("console:task-list"))

    assert page.status_code == 200
    body = page.content.decode()
    assert f'data-task-id="{task.pk}"' in body and f'data-task-id="{theirs.pk}"' not in body
    assert "secret-plan" not in body
    assert 'data-status="pending"' in body
    assert f"{deployable.gateway.slug}:30000" in body
    assert "0 / 1" in body  # instances ready / wanted
    assert 'hx-trigger="every 3s"' in body


def test_htmx_gets_only_the_rows_for_the_live_status(deployable, task):
    InferenceTask.objects.filter(pk=task.pk).update(status="running", ready_instances=1)
    rows = console_as(deployable.member).get(reverse("console:task-list") + "?q=ch", HTTP_HX_REQUEST="true")
    body = rows.content.decode()
    assert body.lstrip().startswith('<tbody id="task-rows"') and "<html" not in body
    assert 'data-status="running"' in body and "1 / 1" in body
    assert 'hx-get="/tasks/?q=ch"' in body  # the poll keeps the filters


def test_the_list_filters_as_the_api_does(deployable):
    factories.TaskFactory(tenant=deployable.tenant, model=deployable.model, name="alpha", status="running")
    factories.TaskFactory(tenant=deployable.tenant, model=deployable.model, name="beta", status="failed")
    client = console_as(deployable.member)
    failed = client.get(reverse("console:task-list"), {"status": "failed"}).content.decode()
    assert ">beta<" in failed and ">alpha<" not in failed
    searched = client.get(reverse("console:task-list"), {"q": "alp"}).content.decode()
    assert ">alpha<" in searched and ">beta<" not in searched


def test_the_list_shows_when_a_runtime_image_update_is_available(deployable, task):
    factories.RuntimeImageVersionFactory(image=task.runtime_image_version.image, version="9.9.9")
    body = console_as(deployable.member).get(reverse("console:task-list")).content.decode()
    assert "update available" in body


def test_listing_runs_a_constant_number_of_queries(deployable, platform_admin):
    client = console_as(platform_admin)

    def fill(rows: int) -> None:
        missing = rows - InferenceTask.objects.count()
        factories.TaskFactory.create_batch(missing, tenant=deployable.tenant, model=deployable.model)

    counts = page_query_counts(client, reverse("console:task-list"), fill, sizes=(3, 12))
    assert counts[0] == counts[1]


# --- scoping and roles ------------------------------------------------------------------------------------------


TASK_PAGES = ("task-detail", "task-status", "task-latency", "task-playground", "task-delete")
TASK_ACTIONS = ("task-start", "task-stop", "task-scale", "task-update-image", "task-delete", "task-playground-stream")


def test_another_tenants_task_is_404_on_every_page_and_action(deployable, task):
    outsider = console_as(make_deployable("globex").member)
    for name in TASK_PAGES:
        assert outsider.get(reverse(f"console:{name}", args=[task.pk])).status_code == 404, name
    for name in TASK_ACTIONS:
        assert outsider.post(reverse(f"console:{name}", args=[task.pk]), {"instances": 3}).status_code == 404, name
    assert InferenceTask.objects.get(pk=task.pk).desired_state == "running"


def test_a_viewer_reads_the_task_without_buttons_and_every_write_is_403(deployable, task):
    viewer = console_as(member_of(deployable.tenant, Role.VIEWER))
    page = viewer.get(reverse("console:task-detail", args=[task.pk])).content.decode()
    assert 'id="task-status"' in page
    for button in ("action-stop", "action-delete", "action-playground", "scale-form"):
        assert button not in page
    assert 'id="new-task"' not in viewer.get(reverse("console:task-list")).content.decode()

    for name in TASK_ACTIONS:
        assert viewer.post(reverse(f"console:{name}", args=[task.pk]), {"instances": 3}).status_code == 403, name
    assert viewer.get(reverse("console:task-delete", args=[task.pk])).status_code == 403
    assert viewer.get(reverse("console:task-playground", args=[task.pk])).status_code == 403
    assert viewer.get(reverse("console:task-create")).status_code == 403
    assert viewer.post(reverse("console:task-dry-run"), {}).status_code == 403
    fresh = InferenceTask.objects.get(pk=task.pk)
    assert (fresh.desired_state, fresh.instances) == ("running", 1)


def test_signed_out_visitors_are_sent_to_sign_in(task):
    response = Client().get(reverse("console:task-detail", args=[task.pk]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("console:login"))


# --- the task page and its actions --------------------------------------------------------------------------------


def test_the_task_page_shows_access_url_snippets_settings_and_events(deployable, task):
    page = console_as(deployable.member).get(reverse("console:task-detail", args=[task.pk])).content.decode()
    access = "http://gw.example.com:30000/v1"
    assert f'id="access-url" class="mono" type="text" value="{access}" readonly' in page
    assert f"curl {access}/chat/completions" in page
    assert "Authorization: Bearer $AICP_API_KEY" in page
    assert html.escape(f'OpenAI(base_url="{access}", api_key=os.environ["AICP_API_KEY"])') in page
    assert html.escape('"model": "chat"') in page and "stream=True" in page
    assert 'id="task-status" data-status="pending" hx-get' in page  # changing: polled live
    for section in ("latency-charts", "usage", "events"):
        assert f'id="{section}"' in page
    assert "Created" in page and "Admitted on pool" in page
    gateway_page = reverse("console:gateway-detail", args=[deployable.gateway.slug])  # a platform admin's page
    assert gateway_page not in page


def test_a_platform_admin_sees_any_tenants_task_with_its_gateways_page(deployable, task, platform_admin):
    page = console_as(platform_admin).get(reverse("console:task-detail", args=[task.pk])).content.decode()
    assert reverse("console:gateway-detail", args=[deployable.gateway.slug]) in page
    assert 'id="action-stop"' in page


def test_the_snippets_are_valid_python_and_shell(deployable, task):
    from inference_jobs.views.tasks import call_snippets

    snippets = call_snippets("http://gw.example.com:30000/v1", "it's-a-name")
    compile(snippets["python"], "snippet.py", "exec")
    assert "'\"'\"'" in snippets["curl"]  # a quote in the model name is escaped for the shell


def test_the_status_partial_polls_while_changing_then_asks_for_a_full_reload(deployable, task):
    client = console_as(deployable.member)
    url = reverse("console:task-status", args=[task.pk])
    changing = client.get(url, HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 3s"' in changing.content.decode() and "HX-Refresh" not in changing

    InferenceTask.objects.filter(pk=task.pk).update(status="failed", status_message="ImagePullBackOff: no such tag")
    done = client.get(url, HTTP_HX_REQUEST="true")
    assert done["HX-Refresh"] == "true" and "hx-trigger" not in done.content.decode()
    assert "Cause: ImagePullBackOff: no such tag" in done.content.decode()

    InferenceTask.objects.filter(pk=task.pk).delete()
    gone = client.get(url, HTTP_HX_REQUEST="true")
    assert gone.status_code == 404 and gone["HX-Redirect"] == reverse("console:task-list")


def test_stop_start_scale_and_update_image_go_through_the_services(deployable, task):
    client = console_as(deployable.member)
    detail = reverse("console:task-detail", args=[task.pk])

    assert client.post(reverse("console:task-stop", args=[task.pk]))["Location"] == detail
    assert InferenceTask.objects.get(pk=task.pk).status == "stopped"
    client.post(reverse("console:task-start", args=[task.pk]))
    assert InferenceTask.objects.get(pk=task.pk).status == "deploying"
    client.post(reverse("console:task-scale", args=[task.pk]), {"instances": 3})
    assert InferenceTask.objects.get(pk=task.pk).instances == 3
    newer = factories.RuntimeImageVersionFactory(image=task.runtime_image_version.image, version="9.9.9")
    assert 'id="action-update-image"' in client.get(detail).content.decode()
    client.post(reverse("console:task-update-image", args=[task.pk]))
    assert InferenceTask.objects.get(pk=task.pk).runtime_image_version == newer

    reasons = list(task.events.values_list("reason", flat=True))
    assert reasons[:4] == ["ImageUpdateRequested", "Scaled", "Started", "Stopped"]
    actions = set(AuditEntry.objects.filter(object_id=str(task.pk)).values_list("action", flat=True))
    assert {"task.stop", "task.start", "task.scale", "task.update_image"} <= actions


def test_a_refused_action_comes_back_as_a_message_with_the_rules_code(deployable, task):
    deployable.tenant.max_compute_units = 4
    deployable.tenant.save()
    client = console_as(deployable.member)
    response = client.post(reverse("console:task-scale", args=[task.pk]), {"instances": 3}, follow=True)
    assert 'data-tags="code-tenant_quota_compute_units"' in response.content.decode()
    assert InferenceTask.objects.get(pk=task.pk).instances == 1

    bad = client.post(reverse("console:task-scale", args=[task.pk]), {"instances": 0}, follow=True)
    assert 'data-tags="code-invalid"' in bad.content.decode()


def test_delete_asks_for_confirmation_then_deletes_through_the_service(deployable, task):
    client = console_as(deployable.member)
    url = reverse("console:task-delete", args=[task.pk])
    question = client.get(url).content.decode()
    assert "Delete task <strong>chat</strong>? Its port and compute are released." in question
    assert InferenceTask.objects.get(pk=task.pk).desired_state == "running"

    response = client.post(url)
    assert response["Location"] == reverse("console:task-list")
    assert InferenceTask.objects.get(pk=task.pk).status == "deleting"
    assert AuditEntry.objects.filter(action="task.delete", object_id=str(task.pk)).exists()


# --- latency and usage ----------------------------------------------------------------------------------------------


def test_the_task_page_charts_latency_and_counts_usage_from_the_adapters_metrics(deployable, task):
    key = tenant_api_key_create(actor=deployable.member, tenant=deployable.tenant, name="mobile-app").credential
    now = timezone.now()
    records = [metric(task, at=now - timedelta(minutes=minutes), api_key_id=key.pk) for minutes in (5, 15, 25)]
    slow = metric(task, at=now - timedelta(minutes=35), api_key_id=key.pk, ttft_ms=5000.0, e2e_ms=5180.0)
    metrics_ingest(task=task, records=[*records, slow])

    client = console_as(deployable.member)
    page = client.get(reverse("console:task-detail", args=[task.pk])).content.decode()

    charts = page[page.index('id="latency-charts"') : page.index('id="usage"')]
    assert charts.count("<svg") == 4
    assert "Time to first token" in charts and "target 2000" in charts
    assert re.search(r'id="latency-requests">4<', charts)
    assert "3 within targets (75 %)" in charts
    usage = page[page.index('id="usage"') : page.index('id="events"')]
    per_day = Counter(timezone.localdate(now - timedelta(minutes=minutes)).isoformat() for minutes in (5, 15, 25, 35))
    for day, requests in per_day.items():  # two days when the test runs just after midnight
        assert re.search(rf'data-day="{day}"><td>[^<]+</td><td class="num">{requests}</td><td class="num">'
                         rf'{25 * requests}</td><td class="num">{10 * requests}</td>', usage)  # fmt: skip
    assert "mobile-app" in usage

    week = client.get(reverse("console:task-latency", args=[task.pk]), {"window": "7d"}).content.decode()
    assert week.startswith('<section id="latency-charts">') and 'value="7d" selected' in week


def test_a_window_longer_than_the_kept_roll_ups_is_explained_not_an_error(deployable, task, settings):
    settings.AICP_METRICS_ROLLUP_RETENTION_DAYS = 3
    page = console_as(deployable.member).get(reverse("console:task-detail", args=[task.pk]), {"window": "7d"})
    assert page.status_code == 200
    assert 'data-code="invalid_window">A window may span at most 3 days' in page.content.decode()
