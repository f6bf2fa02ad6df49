"""The Django admin of tenancy, compute pools, gateways and tasks: every page opens, writes go through the
services (same rules, same audit log) and secrets never show."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from compute_pools.models import ComputePool
from gateways.models import Gateway
from inference_jobs.models import InferenceTask, TaskEngineLoad, TaskEvent
from tenancy import services
from tenancy.choices import Role
from tenancy.models import AuditEntry, Membership, PersonalAPIToken, Tenant, TenantAPIKey
from tests import factories
from tests.conftest import member_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, platform_admin):
    client.force_login(platform_admin)
    return client


@pytest.fixture
def everything(platform_admin):
    """One row of every model the admin shows."""
    task = factories.TaskFactory()
    factories.PoolGrantFactory(tenant=task.tenant, pool=task.compute_pool)
    admin = member_of(task.tenant, Role.ADMIN)
    services.personal_token_create(actor=admin, name="laptop")
    services.tenant_api_key_create(actor=admin, tenant=task.tenant, name="website")
    services.tenant_update(actor=platform_admin, tenant=task.tenant, name="Renamed")
    TaskEvent.objects.create(task=task, reason="Created", message="Admitted.")
    TaskEngineLoad.objects.create(
        task=task,
        instance="host:1",
        observed_at=timezone.now(),
        requests_running=1,
        requests_waiting=0,
        kv_cache_usage=0.1,
    )
    return task


MODELS = [
    "tenancy.user", "tenancy.tenant", "tenancy.membership", "tenancy.personalapitoken", "tenancy.tenantapikey",
    "tenancy.auditentry", "compute_pools.acceleratortype", "compute_pools.computepool", "compute_pools.poolgrant",
    "gateways.gateway", "gateways.gatewayport", "inference_jobs.inferencetask", "inference_jobs.taskevent",
    "inference_jobs.taskengineload",
    "catalog.runtimeimageversion",
]  # fmt: skip


def test_every_model_of_the_platform_is_in_the_admin():
    from django.apps import apps
    from django.contrib import admin

    apps_of_the_platform = ("tenancy", "compute_pools", "gateways", "catalog", "inference_jobs")
    missing = [
        model._meta.label
        for app in apps_of_the_platform
        for model in apps.get_app_config(app).get_models()
        if not admin.site.is_registered(model)
    ]
    assert missing == []


@pytest.mark.parametrize("label", MODELS)
def test_every_list_and_detail_page_opens(admin_client, everything, label):
    from django.apps import apps

    app_label, model_name = label.split(".")
    model = apps.get_model(app_label, model_name)
    assert admin_client.get(reverse(f"admin:{app_label}_{model_name}_changelist")).status_code == 200
    obj = model.objects.order_by("pk").last()
    page = admin_client.get(reverse(f"admin:{app_label}_{model_name}_change", args=[obj.pk]))
    assert page.status_code == 200


def test_credential_pages_never_show_a_digest(admin_client, everything):
    for model in (PersonalAPIToken, TenantAPIKey):
        credential = model.objects.get()
        opts = model._meta
        for url in (
            reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[credential.pk]),
        ):
            page = admin_client.get(url).content.decode()
            assert credential.key_id in page and credential.digest not in page


def test_revoking_keys_from_the_admin(admin_client, everything):
    key = TenantAPIKey.objects.get()
    admin_client.post(
        reverse("admin:tenancy_tenantapikey_changelist"), {"action": "revoke", "_selected_action": [key.pk]}
    )
    key.refresh_from_db()
    assert not key.is_usable
    assert AuditEntry.objects.filter(action="api_key.revoke").count() == 1


def test_a_tenant_created_in_the_admin_is_audited(admin_client, platform_admin):
    data = {"slug": "acme", "name": "Acme", "description": "", "max_tasks": 3, "max_compute_units": 8,
            "max_tokens_per_minute": 1000, "reflow_retention_days": 30}  # fmt: skip
    response = admin_client.post(reverse("admin:tenancy_tenant_add"), data)
    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="acme")
    assert AuditEntry.objects.get(action="tenant.create").tenant == tenant


def test_a_17_port_gateway_is_refused_next_to_its_field(admin_client):
    data = {"slug": "edge", "name": "Edge", "description": "", "address": "edge.example.com", "scheme": "http",
            "port_range_start": 30000, "port_range_end": 30016, "is_active": "on"}  # fmt: skip
    response = admin_client.post(reverse("admin:gateways_gateway_add"), data)
    assert response.status_code == 200
    assert "A gateway has at most 16 ports" in str(response.context["adminform"].form.errors["port_range_end"])
    assert not Gateway.objects.exists()


def test_a_pool_shrunk_below_use_in_the_admin_is_refused_and_not_audited(admin_client):
    pool = factories.ComputePoolFactory(capacity_compute_units=16)
    factories.TaskFactory(compute_pool=pool, compute_units_per_instance=4)
    data = {
        "name": pool.name, "description": "", "accelerator_type": pool.accelerator_type_id,
        "capacity_compute_units": 3, "memory_per_card_gib": 80, "node_selector": "{}", "tolerations": "[]",
    }  # fmt: skip
    response = admin_client.post(reverse("admin:compute_pools_computepool_change", args=[pool.pk]), data)
    assert response.status_code == 200
    assert "capacity_compute_units" in response.context["adminform"].form.errors
    assert ComputePool.objects.get(pk=pool.pk).capacity_compute_units == 16
    assert not AuditEntry.objects.filter(action="compute_pool.update").exists()


def test_the_last_tenant_admin_cannot_be_deleted_in_the_admin(admin_client):
    membership = Membership.objects.get(user=member_of(factories.TenantFactory(), Role.ADMIN))
    url = reverse("admin:tenancy_membership_delete", args=[membership.pk])
    response = admin_client.post(url, {"post": "yes"}, follow=True)
    assert "last tenant admin" in response.content.decode()
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_tasks_are_stopped_from_the_admin_through_the_lifecycle(admin_client, everything):
    admin_client.post(
        reverse("admin:inference_jobs_inferencetask_changelist"),
        {"action": "stop", "_selected_action": [everything.pk]},
    )
    task = InferenceTask.objects.get(pk=everything.pk)
    assert task.desired_state == "stopped"
    assert task.events.filter(reason="Stopped").exists()
