"""Personal API tokens and tenant API keys through the API: shown once, stored as digests, revocable, and
visible only to whom they belong."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tenancy import services
from tenancy.credentials import credential_digest
from tenancy.models import AuditEntry, PersonalAPIToken, TenantAPIKey
from tests import factories
from tests.helpers import list_query_counts

pytestmark = pytest.mark.django_db


def bearer(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


# Personal API tokens


def test_a_new_token_is_shown_once_and_works(api_as):
    user = factories.UserFactory(username="ada")
    client = api_as(user)
    response = client.post("/api/v1/tokens/", {"name": "laptop"}, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    plaintext = created["token"]
    assert plaintext.startswith(f"aicp_pat_{created['key_id']}_") and created["is_usable"] is True

    assert "token" not in client.get(f"/api/v1/tokens/{created['id']}/").json()
    listed = client.get("/api/v1/tokens/").json()["results"]
    assert all("token" not in row and plaintext not in str(row) for row in listed)
    assert bearer(plaintext).get("/api/v1/users/me/").json()["username"] == "ada"

    stored = PersonalAPIToken.objects.get(pk=created["id"])
    assert stored.digest != plaintext and stored.digest == credential_digest(plaintext)
    entries = AuditEntry.objects.filter(object_type="personalapitoken", object_id=str(created["id"]))
    assert entries.count() == 1 and plaintext not in str(entries.values().first())


def test_a_user_without_any_tenant_may_still_have_tokens(api_as):
    response = api_as(factories.UserFactory()).post("/api/v1/tokens/", {"name": "ci"}, format="json")
    assert response.status_code == 201


def test_tokens_are_their_owners_alone(api_as, platform_admin):
    mine = services.personal_token_create(actor=factories.UserFactory(), name="mine").credential
    for other in (factories.UserFactory(), platform_admin):
        client = api_as(other)
        assert mine.pk not in [t["id"] for t in client.get("/api/v1/tokens/").json()["results"]]
        assert client.get(f"/api/v1/tokens/{mine.pk}/").status_code == 404
        assert client.delete(f"/api/v1/tokens/{mine.pk}/").status_code == 404
    assert PersonalAPIToken.objects.get(pk=mine.pk).revoked_at is None


def test_deleting_a_token_revokes_it_at_once(api_as):
    user = factories.UserFactory()
    client = api_as(user)
    created = client.post("/api/v1/tokens/", {"name": "laptop"}, format="json").json()
    assert client.delete(f"/api/v1/tokens/{created['id']}/").status_code == 204
    assert bearer(created["token"]).get("/api/v1/users/me/").status_code == 401
    shown = client.get(f"/api/v1/tokens/{created['id']}/").json()
    assert shown["revoked_at"] is not None and shown["is_usable"] is False
    assert client.get("/api/v1/tokens/", {"usable": "false"}).json()["count"] == 1
    entry = AuditEntry.objects.get(action="personal_token.revoke")
    assert entry.actor == user and entry.before == {"revoked_at": None}


def test_a_token_may_expire_but_not_in_the_past(api_as):
    client = api_as(factories.UserFactory())
    soon = (timezone.now() + timedelta(days=1)).isoformat()
    assert client.post("/api/v1/tokens/", {"name": "a", "expires_at": soon}, format="json").status_code == 201
    past = (timezone.now() - timedelta(days=1)).isoformat()
    response = client.post("/api/v1/tokens/", {"name": "b", "expires_at": past}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "credential_expiry_in_past" and "expires_at" in response.json()["fields"]


def test_tokens_cannot_be_edited(api_as):
    user = factories.UserFactory()
    token = services.personal_token_create(actor=user, name="a").credential
    response = api_as(user).patch(f"/api/v1/tokens/{token.pk}/", {"name": "b"}, format="json")
    assert response.status_code == 405


def test_listing_tokens_runs_a_constant_number_of_queries(api_as):
    user = factories.UserFactory()

    def fill(rows: int) -> None:
        for _ in range(rows - PersonalAPIToken.objects.filter(user=user).count()):
            services.personal_token_create(actor=user, name="extra")

    few, many = list_query_counts(api_as(user), "/api/v1/tokens/", fill)
    assert few == many


# Tenant API keys


def test_a_tenant_admin_creates_a_key_shown_once(api_as, acme):
    client = api_as(acme.admin)
    response = client.post("/api/v1/api-keys/", {"tenant": "acme", "name": "website"}, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["key"].startswith(f"aicp_sk_{created['key_id']}_")
    assert (created["tenant"], created["created_by"]) == ("acme", "acme-admin")

    assert "key" not in client.get(f"/api/v1/api-keys/{created['id']}/").json()
    stored = TenantAPIKey.objects.get(pk=created["id"])
    assert stored.digest != created["key"] and stored.digest == credential_digest(created["key"])
    entry = AuditEntry.objects.get(action="api_key.create")
    assert entry.tenant == acme.tenant and created["key"] not in str(entry.after) and "digest" not in entry.after


def test_members_and_viewers_neither_list_nor_create_keys(api_as, acme):
    key = services.tenant_api_key_create(actor=acme.admin, tenant=acme.tenant, name="website").credential
    for user in (acme.member, acme.viewer):
        client = api_as(user)
        assert client.get("/api/v1/api-keys/").status_code == 403
        assert client.get(f"/api/v1/api-keys/{key.pk}/").status_code == 403
        assert client.post("/api/v1/api-keys/", {"name": "mine"}, format="json").status_code == 403
        assert client.delete(f"/api/v1/api-keys/{key.pk}/").status_code == 403
    assert TenantAPIKey.objects.get().is_usable


def test_another_tenants_keys_answer_404_and_cannot_be_created(api_as, acme, globex):
    theirs = services.tenant_api_key_create(actor=globex.admin, tenant=globex.tenant, name="theirs").credential
    client = api_as(acme.admin)
    assert client.get("/api/v1/api-keys/").json()["count"] == 0
    assert client.get(f"/api/v1/api-keys/{theirs.pk}/").status_code == 404
    assert client.delete(f"/api/v1/api-keys/{theirs.pk}/").status_code == 404
    response = client.post("/api/v1/api-keys/", {"tenant": "globex", "name": "sneaky"}, format="json")
    assert response.status_code == 400 and "tenant" in response.json()["fields"]
    assert list(TenantAPIKey.objects.values_list("name", flat=True)) == ["theirs"]
    assert TenantAPIKey.objects.get(pk=theirs.pk).is_usable


def test_revoking_a_key_keeps_it_listed(api_as, acme):
    key = services.tenant_api_key_create(actor=acme.admin, tenant=acme.tenant, name="website").credential
    client = api_as(acme.admin)
    assert client.delete(f"/api/v1/api-keys/{key.pk}/").status_code == 204
    assert client.get(f"/api/v1/api-keys/{key.pk}/").json()["is_usable"] is False
    assert client.get("/api/v1/api-keys/", {"usable": "true"}).json()["count"] == 0
    assert AuditEntry.objects.filter(action="api_key.revoke", tenant=acme.tenant).count() == 1


def test_a_platform_admin_sees_every_tenants_keys(api_as, platform_admin, acme, globex):
    services.tenant_api_key_create(actor=acme.admin, tenant=acme.tenant, name="a")
    services.tenant_api_key_create(actor=globex.admin, tenant=globex.tenant, name="b")
    client = api_as(platform_admin)
    assert client.get("/api/v1/api-keys/").json()["count"] == 2
    assert [k["name"] for k in client.get("/api/v1/api-keys/", {"tenant": "globex"}).json()["results"]] == ["b"]


def test_listing_keys_runs_a_constant_number_of_queries(api_as, acme):
    def fill(rows: int) -> None:
        for _ in range(rows - TenantAPIKey.objects.count()):
            services.tenant_api_key_create(actor=acme.admin, tenant=acme.tenant, name="extra")

    few, many = list_query_counts(api_as(acme.admin), "/api/v1/api-keys/", fill)
    assert few == many
