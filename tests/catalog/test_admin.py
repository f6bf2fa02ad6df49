"""The catalogue in Django's admin: pages open, and every write goes through the services (audited, ruled)."""

from __future__ import annotations

import pytest

from catalog.models import Model, ModelFamily
from tenancy.models import AuditEntry
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, platform_admin):
    client.force_login(platform_admin)
    return client


def test_the_catalogue_pages_open(admin_client):
    model = factories.ModelFactory()
    version = factories.RuntimeImageVersionFactory()
    for url in (
        "/admin/catalog/modelfamily/",
        "/admin/catalog/model/",
        f"/admin/catalog/model/{model.pk}/change/",
        "/admin/catalog/runtimeimage/",
        f"/admin/catalog/runtimeimage/{version.image.pk}/change/",
    ):
        assert admin_client.get(url).status_code == 200, url
    assert admin_client.get("/admin/catalog/model/add/").status_code == 403  # models arrive by upload


def test_a_family_added_in_the_admin_is_audited(admin_client):
    response = admin_client.post(
        "/admin/catalog/modelfamily/add/",
        {"slug": "mistral-7b", "name": "Mistral-7B", "architecture": "MistralForCausalLM", "parameter_count": 7},
    )
    assert response.status_code == 302
    family = ModelFamily.objects.get(slug="mistral-7b")
    assert AuditEntry.objects.get(action="model_family.create").object_id == str(family.pk)


def test_a_model_renamed_in_the_admin_keeps_the_name_rule(admin_client):
    model = factories.ModelFactory(name="a")
    factories.ModelFactory(tenant=model.tenant, name="b")
    url = f"/admin/catalog/model/{model.pk}/change/"
    response = admin_client.post(url, {"name": "b", "description": ""}, follow=True)
    assert "already has a model named" in response.content.decode()
    assert Model.objects.get(pk=model.pk).name == "a"
    admin_client.post(url, {"name": "c", "description": "renamed"})
    assert Model.objects.get(pk=model.pk).name == "c"
    assert AuditEntry.objects.filter(action="model.update").count() == 1


def test_repointing_a_pinned_image_in_the_admin_is_refused_on_its_field(admin_client):
    task = factories.TaskFactory()
    image = task.runtime_image_version.image
    url = f"/admin/catalog/runtimeimage/{image.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert task.runtime_image_version.version in page  # versions are listed, read only

    form = {"name": image.name, "description": "", "mode": image.mode, "vendor": image.vendor}
    response = admin_client.post(url, {**form, "repository": "elsewhere/image"})
    assert response.status_code == 200  # the form again, with the rule's message next to the field
    assert response.context["adminform"].form.errors["repository"][0].startswith("1 inference task(s) pin")
    image.refresh_from_db()
    assert image.repository != "elsewhere/image"
