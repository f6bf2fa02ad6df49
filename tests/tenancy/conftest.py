from __future__ import annotations

from dataclasses import dataclass

import pytest

from tenancy.choices import Role
from tenancy.models import Tenant, User
from tests import factories
from tests.conftest import member_of


@dataclass
class TenantPeople:
    """A tenant with one user in each role."""

    tenant: Tenant
    admin: User
    member: User
    viewer: User


def tenant_with_people(slug: str) -> TenantPeople:
    tenant = factories.TenantFactory(slug=slug)
    return TenantPeople(
        tenant=tenant,
        admin=member_of(tenant, Role.ADMIN, user__username=f"{slug}-admin"),
        member=member_of(tenant, Role.MEMBER, user__username=f"{slug}-member"),
        viewer=member_of(tenant, Role.VIEWER, user__username=f"{slug}-viewer"),
    )


@pytest.fixture
def acme(db) -> TenantPeople:
    return tenant_with_people("acme")


@pytest.fixture
def globex(db) -> TenantPeople:
    return tenant_with_people("globex")
