"""Tenant isolation on every API endpoint (walked from the router, so a new endpoint must be classified
here before the suite passes):

* a tenant admin of Acme gets 404 for every Globex object, on reads, writes and detail actions, and sees
  none of them in lists;
* nobody creates into another tenant;
* a Globex viewer changes nothing anywhere;
* a revoked or expired personal token opens no endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from catalog.models import Model
from compute_pools.models import PoolGrant
from controlplane.api.urls import router
from inference_jobs.models import InferenceTask
from inference_jobs.services import task_create
from reflow.models import ReflowRecord
from reflow.services import reflow_ingest
from telemetry.models import UsageHour
from telemetry.services import engine_load_ingest, metrics_ingest
from tenancy.choices import Role
from tenancy.models import AuditEntry, Membership, PersonalAPIToken, TenantAPIKey
from tenancy.services import credential_revoke, personal_token_create, tenant_api_key_create
from tests.conftest import Deployable, api_client_for, make_deployable, member_of
from tests.telemetry.records import engine_load, metric, reflow_record

pytestmark = pytest.mark.django_db

# Endpoints whose objects belong to a tenant (or, for tokens and users, to one person).
OWNED = {
    "tenant",
    "membership",
    "api-key",
    "audit-entry",
    "compute-pool",
    "pool-grant",
    "model",
    "task",
    "token",
    "user",
    "access-log",
    "reflow-record",
}
# Platform objects every signed-in user reads and only platform admins change.
SHARED = {"accelerator-type", "gateway", "model-family", "runtime-image"}
# Endpoints where anyone signed in writes their own object, not the tenant's.
PERSONAL = {"token"}


DETAIL_HANDLERS = {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}


@dataclass
class World:
    acme: Deployable
    globex: Deployable
    acme_admin: object
    globex_viewer: object
    globex_task: InferenceTask
    globex_key: TenantAPIKey
    globex_token: PersonalAPIToken

    def owned_by_globex(self, basename: str):
        return {
            "tenant": lambda: self.globex.tenant,
            "membership": lambda: Membership.objects.get(user=self.globex_viewer),
            "api-key": lambda: self.globex_key,
            "audit-entry": lambda: AuditEntry.objects.filter(tenant=self.globex.tenant).first(),
            "compute-pool": lambda: self.globex.pool,
            "pool-grant": lambda: PoolGrant.objects.get(tenant=self.globex.tenant),
            "model": lambda: self.globex.model,
            "task": lambda: self.globex_task,
            "token": lambda: self.globex_token,
            "user": lambda: self.globex.member,
            "access-log": lambda: UsageHour.objects.get(tenant=self.globex.tenant),
            "reflow-record": lambda: ReflowRecord.objects.get(tenant=self.globex.tenant),
        }[basename]()


@pytest.fixture
def world() -> World:
    acme = make_deployable("acme")
    globex = make_deployable("globex")  # its own pool, granted to Globex only
    acme_admin = member_of(acme.tenant, Role.ADMIN, user__username="acme-admin")
    globex_admin = member_of(globex.tenant, Role.ADMIN, user__username="globex-admin")
    globex_task = task_create(actor=globex.member, **globex.task_fields())
    # What the task's adapter reported: a request (usage, access log), its engine's load and a captured pair.
    metrics_ingest(task=globex_task, records=[metric(globex_task)])
    engine_load_ingest(task=globex_task, records=[engine_load()])
    reflow_ingest(task=globex_task, records=[reflow_record(globex_task)])
    return World(
        acme=acme,
        globex=globex,
        acme_admin=acme_admin,
        globex_viewer=member_of(globex.tenant, Role.VIEWER, user__username="globex-viewer"),
        globex_task=globex_task,
        globex_key=tenant_api_key_create(actor=globex_admin, tenant=globex.tenant, name="prod").credential,
        globex_token=personal_token_create(actor=globex.member, name="ci").credential,
    )


def routes():
    for prefix, viewset, basename in router.registry:
        detail_actions = [(a.url_path, m) for a in viewset.get_extra_actions() if a.detail for m in a.mapping]
        yield prefix, viewset, basename, detail_actions


def detail_url(prefix: str, viewset, obj) -> str:
    lookup = getattr(obj, viewset.lookup_field) if viewset.lookup_field != "pk" else obj.pk
    return f"/api/v1/{prefix}/{lookup}/"


def test_every_endpoint_is_classified():
    assert {basename for _, _, basename, _ in routes()} == OWNED | SHARED


def test_another_tenants_objects_answer_404_on_every_endpoint(world, api_as):
    client = api_as(world.acme_admin)
    checked = 0
    for prefix, viewset, basename, detail_actions in routes():
        if basename not in OWNED:
            continue
        obj = world.owned_by_globex(basename)
        url = detail_url(prefix, viewset, obj)
        listed = client.get(f"/api/v1/{prefix}/?limit=1000")
        if listed.status_code == 200:
            rows = listed.json()["results"]
            assert str(obj.pk) not in {str(row.get("id")) for row in rows}, basename
            if hasattr(obj, "slug"):
                assert obj.slug not in {row.get("slug") for row in rows}, basename
        else:
            assert listed.status_code == 403, (basename, listed.status_code)  # a list this role may not read
        calls = [
            (method, url)
            for method, handler in DETAIL_HANDLERS.items()
            if hasattr(viewset, handler) and method in viewset.http_method_names
        ]
        calls += [(method, f"{url}{path}/") for path, method in detail_actions]
        for method, target in calls:
            response = getattr(client, method)(target, {}, format="json")
            assert response.status_code == 404, (basename, method, target, response.status_code)
            assert response.json()["code"] == "not_found"
            checked += 1
    assert checked >= 30
    world.globex_task.refresh_from_db()
    assert world.globex_task.desired_state == "running"
    assert TenantAPIKey.objects.get(pk=world.globex_key.pk).revoked_at is None


def test_nobody_creates_into_another_tenant(world, api_as):
    client = api_as(world.acme_admin)
    g = world.globex
    attempts = {
        "/api/v1/tasks/": (g.api_payload(name="intruder"), "json"),
        "/api/v1/tasks/dry-run/": (g.api_payload(name="intruder"), "json"),
        "/api/v1/memberships/": ({"tenant": g.tenant.slug, "user": "acme-admin", "role": "admin"}, "json"),
        "/api/v1/api-keys/": ({"tenant": g.tenant.slug, "name": "stolen"}, "json"),
        "/api/v1/models/upload/": (
            {"tenant": g.tenant.slug, "name": "intruder", "files": [SimpleUploadedFile("config.json", b"{}")]},
            "multipart",
        ),
    }
    for url, (payload, fmt) in attempts.items():
        response = client.post(url, payload, format=fmt)
        assert response.status_code == 400, (url, response.status_code)
        assert "tenant" in response.json()["fields"], url
    platform_writes = ["/api/v1/tenants/", "/api/v1/compute-pools/", "/api/v1/pool-grants/", "/api/v1/users/"]
    for url in platform_writes:
        assert client.post(url, {"tenant": g.tenant.slug}, format="json").status_code == 403, url
    assert not InferenceTask.objects.filter(name="intruder").exists()
    assert not Model.objects.filter(name="intruder").exists()
    assert not Membership.objects.filter(tenant=g.tenant, user=world.acme_admin).exists()
    assert not TenantAPIKey.objects.filter(name="stolen").exists()


def test_a_viewer_changes_nothing_anywhere(world, api_as):
    client = api_as(world.globex_viewer)
    before = _snapshot()
    for prefix, viewset, basename, detail_actions in routes():
        if basename in PERSONAL:
            continue
        calls = [("post", f"/api/v1/{prefix}/")]
        if basename in OWNED:
            url = detail_url(prefix, viewset, world.owned_by_globex(basename))
            calls += [("patch", url), ("delete", url)]
            calls += [(m, f"{url}{path}/") for path, m in detail_actions if m not in ("get", "head")]
        for method, target in calls:
            if method not in viewset.http_method_names:
                continue
            response = getattr(client, method)(target, {"name": "x", "instances": 2}, format="json")
            assert response.status_code in (403, 404, 405), (basename, method, target, response.status_code)
    assert _snapshot() == before


def _snapshot() -> dict:
    models = (InferenceTask, Model, Membership, TenantAPIKey, PoolGrant)
    return {
        m.__name__: sorted(m.objects.values_list("pk", "updated_at" if hasattr(m, "updated_at") else "pk"))
        for m in models
    }


@pytest.mark.parametrize("spoil", ["revoked", "expired"])
def test_a_revoked_or_expired_token_opens_no_endpoint(world, spoil):
    created = personal_token_create(actor=world.acme_admin, name="spoiled")
    if spoil == "revoked":
        credential_revoke(actor=world.acme_admin, credential=created.credential)
    else:
        PersonalAPIToken.objects.filter(pk=created.credential.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    client = api_client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created.plaintext}")
    for prefix, _, basename, _ in routes():
        response = client.get(f"/api/v1/{prefix}/")
        assert response.status_code == 401, basename
        assert spoil in response.json()["message"]
