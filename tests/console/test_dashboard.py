"""The sign-in page and the dashboard: what a platform admin and a tenant user see first."""

from __future__ import annotations

import pytest

from tenancy.choices import Role
from tests import factories
from tests.conftest import make_deployable, member_of

pytestmark = pytest.mark.django_db


def test_every_console_page_sends_an_anonymous_visitor_to_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/")
    page = client.get("/login/")
    assert page.status_code == 200
    assert b'name="username"' in page.content


def test_signing_in_with_a_wrong_password_says_so(client):
    factories.UserFactory(username="ann")
    response = client.post("/login/", {"username": "ann", "password": "wrong"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_a_platform_admin_sees_every_tenant_pool_and_gateway(client, platform_admin):
    acme = make_deployable("acme")
    globex = make_deployable("globex", pool=acme.pool, gateway=acme.gateway)
    factories.TaskFactory(**acme.task_fields(name="acme-chat"))
    factories.TaskFactory(**globex.task_fields(name="globex-chat"))
    client.force_login(platform_admin)
    page = client.get("/").content.decode()
    for text in ("acme-chat", "globex-chat", acme.pool.name, acme.gateway.name, 'id="task-total">2<'):
        assert text in page
    assert "Compute pools" in page and "Platform" in page


def test_a_tenant_user_sees_only_their_tenants_tasks_and_quota(client):
    acme = make_deployable("acme")
    globex = make_deployable("globex", pool=acme.pool, gateway=acme.gateway)
    factories.TaskFactory(**acme.task_fields(name="acme-chat"))
    factories.TaskFactory(**globex.task_fields(name="globex-chat"))
    viewer = member_of(acme.tenant, Role.VIEWER, user__username="viewer")
    client.force_login(viewer)
    page = client.get("/").content.decode()
    assert "acme-chat" in page and 'id="task-total">1<' in page
    assert f"1 / {acme.tenant.max_tasks}" in page  # the quota meter of the tenant
    assert "globex" not in page
    assert acme.gateway.name not in page  # platform usage is for platform admins
    assert "Tenants</a>" not in page  # nor the platform's pages in the navigation
