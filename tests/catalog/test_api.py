"""The catalogue API: who reads and writes what, tenant isolation, refusals as structured errors, publishing
without touching running tasks, and list query counts."""

from __future__ import annotations

import pytest

from catalog.models import Model, ModelFamily, RuntimeImage
from tenancy.choices import Role
from tests import factories
from tests.catalog.conftest import upload
from tests.catalog.modelfiles import tiny_model_files
from tests.conftest import make_deployable, member_of
from tests.helpers import list_query_counts

pytestmark = pytest.mark.django_db


def test_every_signed_in_user_reads_the_families_only_admins_write(deployable, api_as, platform_admin):
    member = api_as(deployable.member)
    slugs = [family["slug"] for family in member.get("/api/v1/model-families/?limit=100").json()["results"]]
    assert {"llama2-7b", "llama2-13b", "baichuan2-7b", "baichuan2-13b", "qwen2-72b", "yi-1-5-34b"} <= set(slugs)
    payload = {"slug": "mistral-7b", "name": "Mistral-7B", "architecture": "MistralForCausalLM", "parameter_count": 7}
    assert member.post("/api/v1/model-families/", payload, format="json").status_code == 403
    assert member.delete("/api/v1/model-families/llama2-7b/").status_code == 403

    admin = api_as(platform_admin)
    created = admin.post("/api/v1/model-families/", payload, format="json")
    assert created.status_code == 201 and created.json()["validated"] is True
    again = admin.post("/api/v1/model-families/", payload, format="json")
    assert again.status_code == 400 and again.json()["code"] == "slug_taken"
    patched = admin.patch("/api/v1/model-families/mistral-7b/", {"parameter_count": 7_241_732_096}, format="json")
    assert patched.json()["parameter_count"] == 7_241_732_096
    assert admin.delete("/api/v1/model-families/mistral-7b/").status_code == 204
    assert not ModelFamily.objects.filter(slug="mistral-7b").exists()


def test_models_are_read_by_their_tenant_and_created_only_by_upload(deployable, api_as):
    other = factories.ModelFactory()
    client = api_as(member_of(deployable.tenant, Role.VIEWER))
    listed = client.get("/api/v1/models/").json()
    assert [model["id"] for model in listed["results"]] == [deployable.model.pk]
    body = client.get(f"/api/v1/models/{deployable.model.pk}/").json()
    assert (body["tenant"], body["status"], body["task_count"]) == ("acme", "ready", 0)
    assert client.get(f"/api/v1/models/{other.pk}/").status_code == 404
    assert api_as(deployable.member).post("/api/v1/models/", {"name": "x"}, format="json").status_code == 405


def test_a_member_renames_and_refamilies_a_model_a_viewer_cannot(deployable, api_as):
    url = f"/api/v1/models/{deployable.model.pk}/"
    viewer = api_as(member_of(deployable.tenant, Role.VIEWER))
    assert viewer.patch(url, {"name": "renamed"}, format="json").status_code == 403
    assert viewer.delete(url).status_code == 403

    member = api_as(deployable.member)
    body = member.patch(url, {"name": "renamed", "family": "llama2-7b"}, format="json").json()
    assert (body["name"], body["family"], body["family_name"]) == ("renamed", "llama2-7b", "Llama2-7B")
    assert member.patch(url, {"family": None}, format="json").json()["family"] is None

    factories.ModelFactory(tenant=deployable.tenant, name="taken")
    taken = member.patch(url, {"name": "taken"}, format="json")
    assert taken.status_code == 400
    assert taken.json() == {
        "code": "model_name_taken",
        "message": "Tenant 'acme' already has a model named 'taken'.",
        "fields": {"name": ["Tenant 'acme' already has a model named 'taken'."]},
    }


def test_a_model_in_use_cannot_be_deleted(deployable, api_as):
    factories.TaskFactory(tenant=deployable.tenant, model=deployable.model, name="chat")
    client = api_as(deployable.member)
    response = client.delete(f"/api/v1/models/{deployable.model.pk}/")
    assert response.status_code == 400
    assert response.json()["code"] == "model_in_use"
    assert "chat" in response.json()["message"]
    assert client.get(f"/api/v1/models/{deployable.model.pk}/").json()["task_count"] == 1


def test_deleting_a_model_removes_it_and_its_files(
    deployable, api_as, storage_root, django_capture_on_commit_callbacks
):
    client = api_as(deployable.member)
    body = upload(client, files=tiny_model_files()).json()
    folder = storage_root / body["storage_path"]
    assert folder.is_dir()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/api/v1/models/{body['id']}/").status_code == 204
    assert not folder.exists()
    assert client.get(f"/api/v1/models/{body['id']}/").status_code == 404


def test_another_tenants_model_answers_404_everywhere(deployable, api_as):
    outsider = make_deployable("globex")
    client = api_as(outsider.member)
    theirs = f"/api/v1/models/{deployable.model.pk}/"
    assert client.get(theirs).status_code == 404
    assert client.patch(theirs, {"name": "mine"}, format="json").status_code == 404
    assert client.delete(theirs).status_code == 404
    sizing = client.get(f"{theirs}sizing/?compute_pool={outsider.pool.slug}")
    assert sizing.status_code == 404 and sizing.json()["code"] == "not_found"
    assert Model.objects.get(pk=deployable.model.pk).name == deployable.model.name


def test_model_filters(deployable, api_as):
    factories.ModelFactory(tenant=deployable.tenant, name="broken", status="failed", family_id=None)
    client = api_as(deployable.member)
    assert [m["name"] for m in client.get("/api/v1/models/?status=failed").json()["results"]] == ["broken"]
    assert [m["name"] for m in client.get("/api/v1/models/?q=brok").json()["results"]] == ["broken"]
    assert client.get("/api/v1/models/?status=bogus").status_code == 400


def test_runtime_images_list_their_versions_newest_first(deployable, api_as):
    image = RuntimeImage.objects.get(slug="normal-nvidia")
    first = image.versions.get()
    factories.RuntimeImageVersionFactory(image=image, version="2.0.0")
    body = api_as(deployable.member).get("/api/v1/runtime-images/normal-nvidia/").json()
    assert body["latest_version"]["version"] == "2.0.0"
    assert body["latest_version"]["reference"] == f"{image.repository}:2.0.0"
    assert [v["version"] for v in body["versions"]] == ["2.0.0", first.version]


def test_only_platform_admins_create_and_publish_runtime_images(deployable, api_as, platform_admin):
    payload = {"slug": "vllm-next", "name": "vLLM next", "mode": "high_performance", "vendor": "nvidia",
               "repository": "registry.example.com/aicp/vllm"}  # fmt: skip
    member = api_as(deployable.member)
    assert member.post("/api/v1/runtime-images/", payload, format="json").status_code == 403
    publish = member.post("/api/v1/runtime-images/normal-nvidia/publish/", {"version": "9"}, format="json")
    assert publish.status_code == 403

    admin = api_as(platform_admin)
    created = admin.post("/api/v1/runtime-images/", payload, format="json")
    assert created.status_code == 201
    assert (created.json()["latest_version"], created.json()["versions"]) == (None, [])
    digest = "sha256:" + "ab" * 32
    published = admin.post(
        "/api/v1/runtime-images/vllm-next/publish/", {"version": "0.6.3", "digest": digest}, format="json"
    )
    assert published.status_code == 201
    assert published.json()["reference"] == f"registry.example.com/aicp/vllm:0.6.3@{digest}"
    again = admin.post("/api/v1/runtime-images/vllm-next/publish/", {"version": "0.6.3"}, format="json")
    assert again.status_code == 400 and again.json()["code"] == "runtime_image_version_taken"
    bad = admin.post(
        "/api/v1/runtime-images/vllm-next/publish/", {"version": "a tag?", "digest": "md5:1"}, format="json"
    )
    assert bad.status_code == 400 and set(bad.json()["fields"]) == {"version", "digest"}


def test_publishing_a_version_offers_an_update_but_never_moves_a_task(deployable, api_as, platform_admin):
    task = factories.TaskFactory(tenant=deployable.tenant, model=deployable.model, compute_pool=deployable.pool)
    pinned = task.runtime_image_version
    member = api_as(deployable.member)
    before = member.get(f"/api/v1/tasks/{task.pk}/").json()
    assert (before["runtime_image_version"], before["update_available"]) == (pinned.version, False)

    url = f"/api/v1/runtime-images/{pinned.image.slug}/publish/"
    assert api_as(platform_admin).post(url, {"version": "99.0.0"}, format="json").status_code == 201

    after = member.get(f"/api/v1/tasks/{task.pk}/").json()
    assert (after["runtime_image_version"], after["update_available"]) == (pinned.version, True)
    task.refresh_from_db()
    assert task.runtime_image_version_id == pinned.pk


def test_an_image_pinned_by_a_task_cannot_be_deleted_or_repointed(deployable, api_as, platform_admin):
    task = factories.TaskFactory(tenant=deployable.tenant, model=deployable.model)
    url = f"/api/v1/runtime-images/{task.runtime_image_version.image.slug}/"
    admin = api_as(platform_admin)
    deleted = admin.delete(url)
    assert deleted.status_code == 400 and deleted.json()["code"] == "runtime_image_in_use"
    repointed = admin.patch(url, {"repository": "elsewhere/image"}, format="json")
    assert repointed.status_code == 400 and list(repointed.json()["fields"]) == ["repository"]
    assert admin.patch(url, {"description": "The PyTorch runtime"}, format="json").status_code == 200
    assert admin.delete("/api/v1/runtime-images/normal-iluvatar/").status_code == 204  # published, never pinned
    assert not RuntimeImage.objects.filter(slug="normal-iluvatar").exists()


def test_listing_models_runs_a_constant_number_of_queries(deployable, api_as):
    def create(missing):
        for _ in range(missing):
            factories.ModelFactory(tenant=deployable.tenant, family=ModelFamily.objects.first())
            factories.TaskFactory(tenant=deployable.tenant, model=Model.objects.latest("id"))

    def count():
        return Model.objects.filter(tenant=deployable.tenant).count()

    few, many = list_query_counts(api_as(deployable.member), "/api/v1/models/", lambda rows: create(rows - count()))
    assert few == many <= 8


def test_listing_families_runs_a_constant_number_of_queries(deployable, api_as):
    few, many = list_query_counts(
        api_as(deployable.member),
        "/api/v1/model-families/",
        lambda rows: factories.ModelFamilyFactory.create_batch(max(rows - ModelFamily.objects.count(), 0)),
    )
    assert few == many <= 8


def test_listing_runtime_images_runs_a_constant_number_of_queries(deployable, api_as):
    def create(missing):
        for index in range(missing):
            image = factories.RuntimeImageFactory(slug=f"image-{RuntimeImage.objects.count()}-{index}")
            factories.RuntimeImageVersionFactory.create_batch(2, image=image)

    few, many = list_query_counts(
        api_as(deployable.member), "/api/v1/runtime-images/", lambda rows: create(rows - RuntimeImage.objects.count())
    )
    assert few == many <= 8
