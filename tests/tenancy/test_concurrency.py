"""Memberships under concurrent requests: tenant admins who all step down at the same moment cannot
leave their tenant without an admin, and no request ends in a 500 or a deadlock."""

from __future__ import annotations

from collections import Counter

import pytest
from django.test import Client
from django.urls import reverse

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


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["change", "remove"])
def test_a_membership_removed_while_others_change_it_answers_404_not_500(how):
    """Every request finds the membership before the first removal commits, then waits on the tenant's lock:
    those that get the lock after the removal find the row gone, which is a 404."""
    tenant = factories.TenantFactory()
    admins = [member_of(tenant, Role.ADMIN) for _ in range(ADMINS)]
    target = Membership.objects.get(user=member_of(tenant, Role.MEMBER))
    url = f"/api/v1/memberships/{target.pk}/"
    clients = [api_client_for(admin) for admin in admins]

    def remove(client):
        return lambda: client.delete(url)

    def change(client):
        return lambda: client.patch(url, {"role": "viewer"}, format="json")

    others = remove if how == "remove" else change
    results = race([remove(clients[0]), *(others(client) for client in clients[1:])])

    if how == "remove":
        assert Counter(results) == Counter({(204, None): 1, (404, "not_found"): ADMINS - 1})
    else:  # a change that took the lock before the removal succeeded; the others found the membership gone
        assert results[0] == (204, None)
        assert set(results[1:]) <= {(200, None), (404, "not_found")}, results
    assert not Membership.objects.filter(pk=target.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_member_removed_from_the_console_by_several_admins_at_once_is_removed_once():
    """The console's twin of the API race: one admin is told the member is removed, the others that someone else
    removed the member first (never a server error)."""
    tenant = factories.TenantFactory()
    member = member_of(tenant, Role.MEMBER)
    url = reverse("console:member-delete", args=[Membership.objects.get(user=member).pk])
    clients = []
    for _ in range(ADMINS):
        client = Client()
        client.force_login(member_of(tenant, Role.ADMIN))
        clients.append(client)
    answers = [None] * ADMINS

    def remove(index):
        def send():
            answers[index] = clients[index].post(url, follow=True)
            return answers[index]

        return send

    results = race([remove(index) for index in range(ADMINS)])

    # An admin whose request looked the member up after the removal gets the console's 404 page.
    assert set(results) <= {(200, None), (404, None)}, results
    pages = [answer.content.decode() for answer in answers if answer.status_code == 200]
    assert sum(f"{member.username} is no longer a member" in page for page in pages) == 1
    assert sum('data-tags="code-not_found"' in page for page in pages) == len(pages) - 1
    assert not Membership.objects.filter(user=member).exists()
