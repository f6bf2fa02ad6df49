from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from compute_pools.models import ComputePool
from gateways.models import Gateway
from tenancy.choices import Role
from tenancy.models import Tenant, User
from tenancy.services import personal_token_create
from tests import factories

# The API-server emulator as a cluster: the `emulator` and `kube` fixtures.
pytest_plugins = ["tests.kube.cluster"]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Argon2 takes a fifth of a second per password on purpose; the suite makes hundreds of users."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def no_orchestrator(settings):
    """Tasks are stored, never deployed, unless a test picks an orchestrator (the embedded default, ``local``,
    would start engine processes on every write)."""
    settings.AICP_ORCHESTRATOR = "none"


def api_client_for(user: User | None) -> APIClient:
    """An API client that authenticates as ``user`` with a real personal API token (as automation does)."""
    client = APIClient()
    if user is not None:
        token = personal_token_create(actor=user, name="tests")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.plaintext}")
    return client


@pytest.fixture
def api_as():
    return api_client_for


@pytest.fixture
def platform_admin(db) -> User:
    return factories.PlatformAdminFactory(username="root")


def member_of(tenant: Tenant, role: str = Role.MEMBER, **kwargs) -> User:
    return factories.MembershipFactory(tenant=tenant, role=role, **kwargs).user


@dataclass
class Deployable:
    """A tenant with what a task needs: a member, a ready model, a granted pool, a gateway, runtime images."""

    tenant: Tenant
    member: User
    model: object
    pool: ComputePool
    gateway: Gateway

    def task_fields(self, **overrides) -> dict:
        fields = {
            "tenant": self.tenant,
            "name": "chat",
            "model": self.model,
            "mode": "normal",
            "compute_pool": self.pool,
            "gateway": self.gateway,
            "compute_units_per_instance": 2,
            "instances": 1,
        }
        fields.update(overrides)
        return fields

    def api_payload(self, **overrides) -> dict:
        payload = {
            "tenant": self.tenant.slug,
            "name": "chat",
            "model": self.model.pk,
            "mode": "normal",
            "compute_pool": self.pool.slug,
            "gateway": self.gateway.slug,
            "compute_units_per_instance": 2,
        }
        payload.update(overrides)
        return payload


def make_deployable(slug: str = "acme", *, accelerator: str = "nvidia-gpu", pool=None, gateway=None) -> Deployable:
    factories.runtime_images_for_every_mode()
    tenant = factories.TenantFactory(slug=slug)
    if pool is None:
        kind = factories.accelerator(accelerator)
        # A CPU pool's memory per core is the CPU type's (4 GiB), as the demo platform's: a task's vLLM on it
        # asks for a KV cache of an eighth of that per core, which fits beside the suite on this machine.
        memory = {"memory_per_card_gib": kind.memory_per_card_gib} if kind.vendor == "none" else {}
        pool = factories.ComputePoolFactory(accelerator_type=kind, **memory)
    factories.PoolGrantFactory(pool=pool, tenant=tenant)
    return Deployable(
        tenant=tenant,
        member=member_of(tenant, Role.MEMBER, user__username=f"{slug}-member"),
        model=factories.ModelFactory(tenant=tenant),
        pool=pool,
        gateway=gateway or factories.GatewayFactory(),
    )


@pytest.fixture
def deployable(db) -> Deployable:
    return make_deployable()
