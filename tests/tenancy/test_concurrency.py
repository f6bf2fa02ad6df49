"""The last-admin guard under concurrent requests: tenant admins who all step down at the same moment cannot
leave their tenant without an admin, and no request ends in a 500 or a deadlock."""

from __future__ import annotations

from collections import Counter

import pytest

from tenancy.choices import Role
from tenancy.models import Membership
from tests import factories
from tests.conftest import api_client_for, member_of
from tests.helpers import race

ADMINS = 8


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["demote", "remove"])
def test_admins_stepping_down_at_once_leave_one_admin(how):
    tenant = factories.TenantFactory()
    admins = [member_of(tenant, Role.ADMIN) for _ in range(ADMINS)]
    clients = [api_client_for(admin) for admin in admins]
    memberships = [Membership.objects.get(user=admin) for admin in admins]

    def step_down(client, membership):
        if how == "demote":
            return lambda: client.patch(f"/api/v1/memberships/{membership.pk}/", {"role": "member"}, format="json")
        return lambda: client.delete(f"/api/v1/memberships/{membership.pk}/")

    results = race([step_down(client, membership) for client, membership in zip(clients, memberships, strict=True)])

    ok = 200 if how == "demote" else 204
    assert Counter(results) == Counter({(ok, None): ADMINS - 1, (400, "last_tenant_admin"): 1})
    assert Membership.objects.filter(tenant=tenant, role=Role.ADMIN).count() == 1
