"""The console's create form and its live dry run: shape checks, the service call, and for every platform
rule the same refusal (code, message, field) as the API's."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from inference_jobs.admission import ADMISSION_RULES
from inference_jobs.models import InferenceTask
from tenancy.choices import Role
from tenancy.models import AuditEntry
from tests import factories
from tests.conftest import make_deployable, member_of
from tests.inference_jobs.console import FORM_DEFAULTS, api_payload, console_as, form_errors
from tests.inference_jobs.scenarios import SCENARIOS

pytestmark = pytest.mark.django_db


# --- the create form ------------------------------------------------------------------------------------------


def test_a_model_pages_link_preselects_the_model_and_tenant(deployable):
    url = reverse("console:task-create") + f"?model={deployable.model.pk}&tenant={deployable.tenant.slug}"
    page = console_as(deployable.member).get(url).content.decode()
    assert f'<option value="{deployable.model.pk}" selected>' in page
    assert f'<option value="{deployable.tenant.slug}" selected>' in page


def test_the_create_form_offers_the_tenants_ready_models_with_spec_defaults_and_advice(deployable):
    factories.ModelFactory(tenant=deployable.tenant, name="still-uploading", status="uploading")
    factories.ModelFactory(tenant=make_deployable("globex").tenant, name="their-model")

    page = console_as(deployable.member).get(reverse("console:task-create")).content.decode()

    assert deployable.model.name in page
    assert "still-uploading" not in page and "their-model" not in page
    for section in ("section-basic", "section-resources", "section-advanced"):
        assert f'id="{section}"' in page
    assert 'name="temperature" value="0.7"' in page and 'name="top_p" value="0.9"' in page
    assert 'name="ttft_slo_ms" value="2000"' in page and 'name="tpot_slo_ms" value="100"' in page
    assert re.search(r'<input type="checkbox" name="async_batching"[^>]* checked>', page)
    assert not re.search(r'<input type="checkbox" name="reflow_enabled"[^>]* checked>', page)
    assert "legal or medical use: below 0.5" in page
    assert "0.1–0.3 precise, 0.3–0.5 balanced, 0.5–0.8 creative" in page
    assert "under 30B → 2; 30–70B → 4–8; over 70B → 8–16" in page
    assert 'hx-post="/tasks/dry-run/"' in page and 'name="dry_run"' in page


def test_a_member_of_two_tenants_finds_the_models_under_their_tenant(deployable):
    other = make_deployable("globex", pool=deployable.pool, gateway=deployable.gateway)
    member_of(other.tenant, Role.MEMBER, user=deployable.member)
    client = console_as(deployable.member)
    page = client.get(reverse("console:task-create")).content.decode()
    assert '<optgroup label="Acme">' in page and '<optgroup label="Globex">' in page
    data = {**FORM_DEFAULTS, **other.api_payload(name="theirs")}
    assert client.post(reverse("console:task-create"), data).status_code == 302
    assert InferenceTask.objects.get(name="theirs").tenant == other.tenant


def test_creating_through_the_form_goes_through_the_service_and_opens_the_task(deployable):
    data = {**FORM_DEFAULTS, **deployable.api_payload(name="helper"), "system_prompt": "Be brief."}

    client = console_as(deployable.member)
    response = client.post(reverse("console:task-create"), data)

    task = InferenceTask.objects.get(tenant=deployable.tenant, name="helper")
    assert response.status_code == 302 and response["Location"] == reverse("console:task-detail", args=[task.pk])
    assert (task.compute_units_per_instance, task.system_prompt, task.async_batching) == (2, "Be brief.", True)
    assert task.created_by == deployable.member
    assert task.events.filter(reason="Created").exists()
    assert AuditEntry.objects.filter(action="task.create", object_id=str(task.pk), actor=deployable.member).exists()
    detail = client.get(response["Location"]).content.decode()
    assert "was created" in detail and "aicp_it_" not in detail  # the ingest token is the adapter's, not shown


def test_an_empty_compute_per_instance_takes_the_sizing_advice(deployable):
    data = {**FORM_DEFAULTS, **deployable.api_payload(name="advised", compute_units_per_instance="")}
    console_as(deployable.member).post(reverse("console:task-create"), data)
    assert InferenceTask.objects.get(name="advised").compute_units_per_instance == 2


def test_bad_shapes_are_shown_on_their_fields_and_nothing_is_created(deployable):
    data = {**FORM_DEFAULTS, **deployable.api_payload(name="Not A Slug!", temperature=3, top_p=0, instances=0)}
    page = console_as(deployable.member).post(reverse("console:task-create"), data)
    assert page.status_code == 200
    assert {field for field, _, _ in form_errors(page.content)} == {"name", "temperature", "top_p", "instances"}
    assert InferenceTask.objects.count() == 0


def test_a_model_of_another_tenant_is_refused_on_the_model_field(deployable, platform_admin):
    other = make_deployable("globex")
    data = {**FORM_DEFAULTS, **deployable.api_payload(model=other.model.pk)}
    page = console_as(platform_admin).post(reverse("console:task-create"), data)
    assert [(field, code) for field, code, _ in form_errors(page.content)] == [("model", "invalid")]
    assert InferenceTask.objects.count() == 0


PARITY = [scenario for scenario in SCENARIOS if scenario.code != "model_not_ready"]  # the form offers ready models


@pytest.mark.parametrize("scenario", PARITY, ids=lambda s: f"{s.code}-{s.arrange.__name__.strip('_')}")
def test_every_rule_refuses_through_the_form_as_through_the_api(scenario, deployable, api_as, settings):
    for name, value in scenario.settings.items():
        setattr(settings, name, value)
    fields = scenario.arrange(deployable)
    actor = factories.PlatformAdminFactory() if scenario.by_platform_admin else deployable.member
    payload = api_payload(deployable, fields)
    tasks_before = InferenceTask.objects.count()

    api = api_as(actor).post("/api/v1/tasks/", payload, format="json").json()
    page = console_as(actor).post(reverse("console:task-create"), {**FORM_DEFAULTS, **payload})

    assert api["code"] == scenario.code
    assert page.status_code == 200
    expected_field = next(iter(api["fields"]), None)  # the API names the rule's field; None: above the form
    assert form_errors(page.content) == [(expected_field, scenario.code, api["message"])]
    assert InferenceTask.objects.count() == tasks_before


# --- the dry run ------------------------------------------------------------------------------------------------


def test_the_dry_run_of_an_incomplete_form_lists_what_is_still_needed(deployable):
    panel = console_as(deployable.member).post(reverse("console:task-dry-run"), {"name": "Bad Name!"})
    body = panel.content.decode()
    assert panel.status_code == 200 and 'id="dry-run-needed"' in body
    assert "Enter a valid “slug”" in body
    for label in ("Model", "Compute pool", "Gateway"):
        assert f"<li>{label}" in body
    assert "data-rule" not in body


def test_the_dry_run_shows_every_rules_verdict_and_the_compute_recommendation(deployable):
    data = {**FORM_DEFAULTS, **deployable.api_payload(compute_units_per_instance="")}
    panel = console_as(deployable.member).post(reverse("console:task-dry-run"), data).content.decode()
    assert 'data-accepted="true"' in panel
    assert len(re.findall(r'data-rule="[\w-]+" data-accepted="true"', panel)) == len(ADMISSION_RULES)
    assert 'data-recommended="2"' in panel and "2 cards per instance" in panel
    assert InferenceTask.objects.count() == 0


def test_the_dry_run_names_each_refused_rule_with_the_apis_code_and_message(deployable, api_as):
    deployable.gateway.is_active = False
    deployable.gateway.save()
    data = {**FORM_DEFAULTS, **deployable.api_payload()}
    api = api_as(deployable.member).post("/api/v1/tasks/dry-run/", deployable.api_payload(), format="json").json()
    refused = next(v for v in api["verdicts"] if not v["accepted"])

    panel = console_as(deployable.member).post(reverse("console:task-dry-run"), data).content.decode()

    assert 'id="dry-run-result" data-accepted="false"' in panel
    assert 'data-rule="gateway_inactive" data-accepted="false"' in panel
    assert f'data-code="gateway_inactive">{html.escape(refused["message"])}</p>' in panel


def test_the_check_button_shows_the_verdicts_without_javascript_and_creates_nothing(deployable):
    factories.TaskFactory(tenant=deployable.tenant, name="chat", model=deployable.model)
    data = {**FORM_DEFAULTS, **deployable.api_payload(name="chat"), "dry_run": "1"}
    page = console_as(deployable.member).post(reverse("console:task-create"), data).content.decode()
    assert 'data-rule="task_name_taken" data-accepted="false"' in page
    assert InferenceTask.objects.filter(tenant=deployable.tenant).count() == 1
