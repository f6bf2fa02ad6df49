"""Tenant isolation in the console, walked over every page of the ``console`` namespace.

A tenant admin of ``acme`` opens every page with ``globex``'s objects: each answers 404, as in the API; the
platform's pages answer 404 to them as well; lists, exports and forms show nothing of ``globex``. A new page
fails ``test_every_console_page_is_classified`` until it is put in one of the groups below.
"""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tenancy.choices import Role
from tenancy.services import tenant_api_key_create
from tests import factories
from tests.conftest import make_deployable, member_of
from tests.reflow.test_api import capture

pytestmark = pytest.mark.django_db

SECRET = "globex-secret"  # every name of globex's objects contains it
PUBLIC = {"login", "logout"}
PLATFORM_ONLY = {
    "tenant-list", "tenant-create", "tenant-edit", "member-user-create",
    "pool-list", "pool-create", "pool-detail", "pool-edit", "pool-grant-edit", "pool-grant-delete",
    "gateway-list", "gateway-create", "gateway-detail", "gateway-edit",
    "image-create", "image-publish",
}  # fmt: skip
TENANT_OBJECT = {
    "task-detail", "task-status", "task-latency", "task-start", "task-stop", "task-scale", "task-update-image",
    "task-delete", "task-playground", "task-playground-stream",
    "model-detail", "model-delete",
    "reflow-detail", "reflow-review",
    "member-edit", "member-delete",
    "api-key-revoke",
}  # fmt: skip
TENANT_LISTS_AND_FORMS = {
    "dashboard", "task-list", "task-create", "task-dry-run", "model-list", "model-upload", "image-list",
    "reflow-list", "reflow-export", "reflow-bulk-review", "member-list", "member-create", "api-key-list",
    "api-key-create", "audit-list",
}  # fmt: skip


def console_pages() -> dict[str, URLPattern]:
    (console,) = [p for p in get_resolver().url_patterns if isinstance(p, URLResolver) and p.namespace == "console"]
    pages: dict[str, URLPattern] = {}

    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
            else:
                pages[pattern.name] = pattern

    walk(console.url_patterns)
    return pages


def test_every_console_page_is_classified():
    groups = [PUBLIC, PLATFORM_ONLY, TENANT_OBJECT, TENANT_LISTS_AND_FORMS]
    assert set(console_pages()) == set().union(*groups)
    assert sum(map(len, groups)) == len(set().union(*groups))  # no page in two groups


@pytest.fixture
def world():
    """``acme`` (whose admin walks the console) and ``globex`` (whose objects must stay invisible)."""
    acme = make_deployable("acme")
    globex = make_deployable("globex")
    globex.model.name = f"{SECRET}-model"
    globex.model.save()
    task = factories.TaskFactory(**globex.task_fields(name=f"{SECRET}-task"))
    record = capture(task, output=f"{SECRET} answer")
    globex_admin = member_of(globex.tenant, Role.ADMIN, user__username=f"{SECRET}-admin")
    key = tenant_api_key_create(actor=globex_admin, tenant=globex.tenant, name=f"{SECRET}-key")
    acme_admin = member_of(acme.tenant, Role.ADMIN, user__username="acme-admin")
    factories.TaskFactory(**acme.task_fields(name="acme-task"))
    grant = globex.pool.grants.get(tenant=globex.tenant)
    return {
        "acme_admin": acme_admin,
        "kwargs": {
            "tenant-edit": {"slug": globex.tenant.slug},
            "pool-detail": {"slug": globex.pool.slug},
            "pool-edit": {"slug": globex.pool.slug},
            "pool-grant-edit": {"slug": globex.pool.slug, "pk": grant.pk},
            "pool-grant-delete": {"slug": globex.pool.slug, "pk": grant.pk},
            "gateway-detail": {"slug": globex.gateway.slug},
            "gateway-edit": {"slug": globex.gateway.slug},
            "image-publish": {"slug": task.runtime_image_version.image.slug},
            **{name: {"pk": task.pk} for name in TENANT_OBJECT if name.startswith("task-")},
            "model-detail": {"pk": globex.model.pk},
            "model-delete": {"pk": globex.model.pk},
            "reflow-detail": {"pk": record.pk},
            "reflow-review": {"pk": record.pk},
            "member-edit": {"pk": globex_admin.memberships.get().pk},
            "member-delete": {"pk": globex_admin.memberships.get().pk},
            "api-key-revoke": {"pk": key.credential.pk},
        },
        "task": task,
        "record": record,
    }


def first_answer(client, url: str) -> int:
    """The status of a GET, or of a POST for a page that only takes POSTs (a 405 says nothing of the object)."""
    status = client.get(url).status_code
    return client.post(url, {}).status_code if status == 405 else status


@pytest.mark.parametrize("name", sorted(PLATFORM_ONLY | TENANT_OBJECT))
def test_another_tenants_objects_and_the_platforms_pages_answer_404(client, world, name):
    client.force_login(world["acme_admin"])
    url = reverse(f"console:{name}", kwargs=world["kwargs"].get(name, {}))
    assert first_answer(client, url) == 404, url


@pytest.mark.parametrize("name", sorted(TENANT_LISTS_AND_FORMS - {"task-dry-run", "reflow-bulk-review"}))
def test_lists_forms_and_exports_show_nothing_of_another_tenant(client, world, name):
    client.force_login(world["acme_admin"])
    response = client.get(reverse(f"console:{name}"))
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert SECRET.encode() not in body


def test_bulk_review_of_another_tenants_records_changes_nothing(client, world):
    client.force_login(world["acme_admin"])
    client.post(reverse("console:reflow-bulk-review"), {"ids": [str(world["record"].pk)], "action": "approve"})
    world["record"].refresh_from_db()
    assert world["record"].review_status == "pending"


def test_a_dry_run_naming_another_tenants_model_reads_as_missing(client, world):
    client.force_login(world["acme_admin"])
    response = client.post(reverse("console:task-dry-run"), {"tenant": "globex", "model": world["task"].model_id})
    assert response.status_code in (200, 400)
    assert SECRET.encode() not in response.content


def test_a_platform_admin_opens_every_platform_page(client, world, platform_admin):
    client.force_login(platform_admin)
    for name in sorted(PLATFORM_ONLY):
        url = reverse(f"console:{name}", kwargs=world["kwargs"].get(name, {}))
        assert first_answer(client, url) in (200, 302), url
