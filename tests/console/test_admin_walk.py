"""A platform admin's walk in a real browser: build a gateway, watch its 16 port slots fill as tasks are
created, and see the 17th task refused on the create form with the rule's code and message, the same as the
API's. No orchestrator runs here (the tasks are admitted, not deployed): ports are a rule of admission."""

from __future__ import annotations

import pytest

from gateways.models import Gateway
from inference_jobs import services
from inference_jobs.models import InferenceTask
from tests.conftest import api_client_for, make_deployable
from tests.console.conftest import PASSWORD, screenshot, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def create_task_in_the_form(page, deployable, name: str) -> None:
    page.goto("/tasks/new/")
    page.select_option("select[name=tenant]", deployable.tenant.slug)
    page.fill("input[name=name]", name)
    page.select_option("select[name=model]", str(deployable.model.pk))
    page.select_option("select[name=mode]", "normal")
    page.select_option("select[name=compute_pool]", deployable.pool.slug)
    page.select_option("select[name=gateway]", "edge")
    page.fill("input[name=compute_units_per_instance]", "1")


def test_an_admin_fills_a_gateways_16_slots_and_the_17th_task_is_refused_on_the_form(browser_page, platform_admin):
    page = browser_page
    platform_admin.set_password(PASSWORD)
    platform_admin.save()
    deployable = make_deployable("acme")
    deployable.pool.capacity_compute_units = 64
    deployable.pool.save()
    deployable.tenant.max_tasks = deployable.tenant.max_compute_units = 64
    deployable.tenant.save()

    sign_in(page, platform_admin.username)
    page.goto("/gateways/new/")
    page.fill("input[name=slug]", "edge")
    page.fill("input[name=name]", "Edge")
    page.fill("input[name=address]", "gw.example.com")
    page.fill("input[name=port_range_start]", "31000")
    page.fill("input[name=port_range_end]", "31015")
    page.click("form.form button[type=submit]")
    page.wait_for_url("**/gateways/edge/")
    assert page.locator(".slot[data-port]").count() == 16
    assert page.locator(".slot.taken").count() == 0

    gateway = Gateway.objects.get(slug="edge")
    for number in range(15):
        services.task_create(**deployable.task_fields(name=f"t{number}", gateway=gateway, compute_units_per_instance=1),
                             actor=platform_admin)  # fmt: skip
    page.reload()
    assert page.locator(".slot.taken").count() == 15

    create_task_in_the_form(page, deployable, "sixteenth")
    page.locator("#dry-run-result[data-accepted=true]").wait_for()  # the live dry run, before submitting
    screenshot(page, "task-create")
    page.click("#task-form button.primary")
    page.wait_for_url("**/tasks/*/")
    assert InferenceTask.objects.filter(gateway=gateway).count() == 16
    page.goto("/gateways/edge/")
    assert page.locator(".slot.taken").count() == 16
    assert page.locator(".slot.taken", has_text="sixteenth").count() == 1
    screenshot(page, "gateway-port-slots")

    create_task_in_the_form(page, deployable, "seventeenth")
    page.locator("#dry-run .verdict[data-rule=gateway_ports_exhausted][data-accepted=false]").wait_for()
    page.click("#task-form button.primary")
    error = page.locator("#field-gateway .error")
    error.wait_for()
    payload = deployable.api_payload(name="seventeenth", gateway="edge", compute_units_per_instance=1)
    answer = api_client_for(platform_admin).post("/api/v1/tasks/", payload, format="json").json()
    assert answer["code"] == "gateway_ports_exhausted"
    assert error.get_attribute("data-code") == answer["code"]
    assert error.inner_text() == answer["message"]
    assert not InferenceTask.objects.filter(name="seventeenth").exists()
    screenshot(page, "task-create-refused")
