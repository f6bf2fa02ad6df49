"""Personal API tokens at the door of the REST API: only a live token of an active user gets in."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tenancy import services
from tenancy.models import PersonalAPIToken
from tests import factories

pytestmark = pytest.mark.django_db


def client_with(header: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    return client


@pytest.fixture
def user():
    return factories.UserFactory(username="ada")


@pytest.fixture
def token(user):
    return services.personal_token_create(actor=user, name="ci")


def test_a_live_token_signs_in_as_its_owner_and_records_its_use(token):
    response = client_with(f"Bearer {token.plaintext}").get("/api/v1/users/me/")
    assert response.status_code == 200 and response.json()["username"] == "ada"
    assert PersonalAPIToken.objects.get(pk=token.credential.pk).last_used_at is not None


def test_use_is_recorded_at_most_once_a_minute(token):
    client = client_with(f"Bearer {token.plaintext}")
    client.get("/api/v1/users/me/")
    first_use = PersonalAPIToken.objects.get(pk=token.credential.pk).last_used_at
    client.get("/api/v1/users/me/")
    assert PersonalAPIToken.objects.get(pk=token.credential.pk).last_used_at == first_use


def test_a_revoked_token_is_refused(token, user):
    services.credential_revoke(actor=user, credential=token.credential)
    response = client_with(f"Bearer {token.plaintext}").get("/api/v1/users/me/")
    assert response.status_code == 401
    assert response.json() == {
        "code": "authentication_failed",
        "message": "This API token has been revoked.",
        "fields": {},
    }


def test_an_expired_token_is_refused(token):
    PersonalAPIToken.objects.filter(pk=token.credential.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client_with(f"Bearer {token.plaintext}").get("/api/v1/users/me/")
    assert response.status_code == 401 and "expired" in response.json()["message"]


def test_a_token_that_expires_later_still_works(user):
    token = services.personal_token_create(actor=user, name="ci", expires_at=timezone.now() + timedelta(hours=1))
    assert client_with(f"Bearer {token.plaintext}").get("/api/v1/users/me/").status_code == 200


def test_an_inactive_users_token_is_refused(token, user):
    user.is_active = False
    user.save()
    assert client_with(f"Bearer {token.plaintext}").get("/api/v1/users/me/").status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "Bearer garbage",
        "Bearer aicp_pat_000000000000_not-the-secret",
        "Bearer aicp_pat",
        "Token a b",
        "Bearer",
    ],
)
def test_garbage_is_refused(token, header):
    response = client_with(header).get("/api/v1/users/me/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_token_with_a_changed_secret_is_refused(token):
    forged = token.plaintext[:-4] + ("AAAA" if not token.plaintext.endswith("AAAA") else "BBBB")
    assert client_with(f"Bearer {forged}").get("/api/v1/users/me/").status_code == 401


def test_a_tenant_api_key_does_not_open_the_rest_api(user):
    tenant = factories.TenantFactory()
    key = services.tenant_api_key_create(actor=user, tenant=tenant, name="callers")
    assert client_with(f"Bearer {key.plaintext}").get("/api/v1/users/me/").status_code == 401


def test_no_credentials_at_all_is_a_401():
    assert APIClient().get("/api/v1/tenants/").status_code == 401
