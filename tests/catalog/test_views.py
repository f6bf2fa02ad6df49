"""The catalogue's console pages: a tenant's models (list, upload through the form, inspection, sizing advice,
delete) and the runtime images, with the same scoping, roles and refusal codes as the API."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import Model, ModelFamily, RuntimeImage, RuntimeImageVersion
from tenancy.choices import Role
from tenancy.models import AuditEntry
from tests import factories
from tests.catalog.conftest import upload
from tests.catalog.modelfiles import TINY_PARAMETERS, folder_digest, tar_bytes, tiny_model_files
from tests.conftest import make_deployable, member_of

pytestmark = pytest.mark.django_db

UPLOAD = "/models/upload/"


def signed_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def field_codes(html: str, field: str) -> list[str]:
    """The ``data-code`` of each error shown on a form field (``_field.html`` wraps a field in ``#field-<name>``)."""
    block = re.search(rf'id="field-{field}">(.*?)</div>', html, re.DOTALL)
    return re.findall(r'class="error" data-code="([^"]+)"', block.group(1)) if block else []


def console_upload(client, *, files: dict[str, bytes] | None = None, archive=None, xhr: bool = False, **fields):
    """POST the console's upload form as a browser does: each file as a ``files`` part, with ``paths`` when the
    upload script sends a folder's relative paths."""
    data = {"tenant": "acme", "name": "tiny", **fields}
    if files is not None:
        data["files"] = [SimpleUploadedFile(path.rsplit("/", 1)[-1], content) for path, content in files.items()]
        if any("/" in path for path in files):
            data["paths"] = list(files)
    if archive is not None:
        data["archive"] = SimpleUploadedFile(*archive)
    headers = {"X-Requested-With": "XMLHttpRequest"} if xhr else {}
    return client.post(UPLOAD, data, headers=headers)


def test_the_model_list_shows_the_tenants_models_to_every_role(deployable):
    other = factories.ModelFactory(name="their-model")
    viewer = signed_in(member_of(deployable.tenant, Role.VIEWER))
    page = viewer.get("/models/").content.decode()
    assert deployable.model.name in page and other.name not in page
    assert 'class="badge ok">ready<' in page
    assert 'id="upload-model"' not in page
    assert 'id="upload-model"' in signed_in(deployable.member).get("/models/").content.decode()


def test_a_platform_admin_sees_every_tenants_models(deployable, platform_admin):
    other = factories.ModelFactory(name="their-model")
    page = signed_in(platform_admin).get("/models/").content.decode()
    assert deployable.model.name in page and other.name in page
    assert signed_in(platform_admin).get(f"/models/{other.pk}/").status_code == 200


def test_the_lists_run_a_constant_number_of_queries(deployable):
    client = signed_in(deployable.member)

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    before = {url: queries(url) for url in ("/models/", "/images/")}
    family = ModelFamily.objects.first()
    for index in range(10):
        model = factories.ModelFactory(tenant=deployable.tenant, family=family)
        factories.TaskFactory(tenant=deployable.tenant, model=model)
        image = factories.RuntimeImageFactory(slug=f"extra-{index}")
        factories.RuntimeImageVersionFactory.create_batch(2, image=image)
    assert {url: queries(url) for url in before} == before


def test_another_tenants_model_answers_404(deployable):
    outsider = signed_in(make_deployable("globex").member)
    for url in (f"/models/{deployable.model.pk}/", f"/models/{deployable.model.pk}/delete/"):
        assert outsider.get(url).status_code == 404
    assert outsider.post(f"/models/{deployable.model.pk}/delete/").status_code == 404
    assert Model.objects.filter(pk=deployable.model.pk).exists()


def test_a_viewer_cannot_upload_or_delete_and_sees_no_buttons(deployable):
    viewer = signed_in(member_of(deployable.tenant, Role.VIEWER))
    assert viewer.get(UPLOAD).status_code == 403
    assert console_upload(viewer, files=tiny_model_files(), name="sneaky").status_code == 403
    detail = viewer.get(f"/models/{deployable.model.pk}/").content.decode()
    assert 'id="delete-model"' not in detail and 'id="create-task"' not in detail
    assert viewer.post(f"/models/{deployable.model.pk}/delete/").status_code == 403
    assert set(Model.objects.values_list("name", flat=True)) == {deployable.model.name}


def test_uploading_a_model_folder_through_the_form_makes_a_ready_model(deployable, storage_root):
    files = tiny_model_files()
    response = console_upload(signed_in(deployable.member), files=files, description="A tiny Llama")
    model = Model.objects.get(tenant=deployable.tenant, name="tiny")
    assert response.status_code == 302 and response.url == f"/models/{model.pk}/"
    assert (model.status, model.parameter_count, model.description) == ("ready", TINY_PARAMETERS, "A tiny Llama")
    assert model.checksum_sha256 == folder_digest(files)
    assert list(AuditEntry.objects.filter(object_id=str(model.pk)).values_list("action", flat=True)) == [
        "model.inspect",
        "model.upload",
    ]
    detail = signed_in(deployable.member).get(response.url).content.decode()
    assert 'id="model-status">ready<' in detail and "16,960" in detail and folder_digest(files) in detail
    assert all(f'<td class="mono">{path}</td>' in detail for path in files)


def test_the_upload_script_gets_json_and_nested_paths_are_kept(deployable, storage_root):
    files = {**tiny_model_files(), "tokenizer/vocab.json": b"{}"}
    response = console_upload(signed_in(deployable.member), files=files, xhr=True)
    model = Model.objects.get(name="tiny")
    assert response.status_code == 201 and response.json() == {"url": f"/models/{model.pk}/"}
    assert (storage_root / model.storage_path / "tokenizer" / "vocab.json").is_file()


def test_an_archive_uploads_too(deployable):
    archive = ("tiny.tar.gz", tar_bytes({f"tiny/{path}": content for path, content in tiny_model_files().items()}))
    response = console_upload(signed_in(deployable.member), archive=archive)
    assert response.status_code == 302
    assert Model.objects.get(name="tiny").status == "ready"


def test_refused_uploads_show_the_apis_code_on_the_field_and_store_nothing(deployable, api_as, settings):
    client = signed_in(deployable.member)
    taken = console_upload(client, files=tiny_model_files(), name=deployable.model.name)
    assert field_codes(taken.content.decode(), "name") == ["model_name_taken"]
    api_taken = upload(api_as(deployable.member), files=tiny_model_files(), name=deployable.model.name)
    assert api_taken.json()["code"] == "model_name_taken"

    unsafe = console_upload(client, files={**tiny_model_files(), "../outside.json": b"{}"}, xhr=True)
    assert unsafe.status_code == 400
    assert re.findall(r'data-code="(\w+)" data-field="paths"', unsafe.content.decode()) == ["model_upload_invalid"]

    nothing = console_upload(client)
    assert field_codes(nothing.content.decode(), "files") == ["invalid"]

    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    too_many = console_upload(client, files=tiny_model_files())
    assert field_codes(too_many.content.decode(), "files") == ["invalid"]
    assert upload(api_as(deployable.member), files=tiny_model_files()).json()["fields"]["files"] == [
        "More than 2 files; upload them as one archive."
    ]
    assert "More than 2 files; upload them as one archive." in too_many.content.decode()
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 100

    settings.AICP_MODEL_UPLOAD_MAX_BYTES = 1000
    too_large = console_upload(client, files=tiny_model_files(), xhr=True)
    assert too_large.status_code == 413
    assert field_codes(too_large.content.decode(), "files") == ["upload_too_large"]
    api_too_large = upload(api_as(deployable.member), files=tiny_model_files())
    assert (api_too_large.status_code, api_too_large.json()["code"]) == (413, "upload_too_large")
    assert list(Model.objects.values_list("name", flat=True)) == [deployable.model.name]


def test_an_over_large_upload_is_refused_on_the_field_before_the_csrf_check_and_a_forged_post_is_refused(
    deployable, settings
):
    browser = signed_in(deployable.member, enforce_csrf_checks=True)
    forged = console_upload(browser, files=tiny_model_files())
    assert forged.status_code == 403
    settings.AICP_MODEL_UPLOAD_MAX_BYTES = 1000
    too_large = console_upload(browser, files=tiny_model_files())
    assert too_large.status_code == 200
    assert field_codes(too_large.content.decode(), "files") == ["upload_too_large"]
    assert Model.objects.count() == 1


def sizing_rows(html: str) -> dict[str, int]:
    return {pool: int(n) for pool, n in re.findall(r'data-pool="([^"]+)" data-recommended="(\d+)"', html)}


def test_sizing_advice_matches_the_apis_sizing_endpoint_for_each_granted_pool(deployable, api_as, platform_admin):
    small_cards = factories.ComputePoolFactory(slug="small-cards", memory_per_card_gib=8)
    factories.PoolGrantFactory(pool=small_cards, tenant=deployable.tenant)
    not_granted = factories.ComputePoolFactory(slug="not-granted")
    url = f"/models/{deployable.model.pk}/"
    page = signed_in(deployable.member).get(url, {"context_length": 16384}).content.decode()
    shown = sizing_rows(page)
    assert set(shown) == {deployable.pool.slug, "small-cards"}

    api = api_as(deployable.member)
    for pool in shown:
        advice = api.get(f"/api/v1/models/{deployable.model.pk}/sizing/?compute_pool={pool}&context_length=16384")
        advice = advice.json()
        assert shown[pool] == advice["recommended"]
        assert f'data-bytes="{advice["kv_cache_bytes"]}"' in page and f'data-bytes="{advice["total_bytes"]}"' in page
    assert shown["small-cards"] > shown[deployable.pool.slug]

    admin_page = signed_in(platform_admin).get(url).content.decode()
    assert not_granted.slug in sizing_rows(admin_page)


def test_the_detail_page_links_to_the_task_form_with_the_model_chosen(deployable):
    page = signed_in(deployable.member).get(f"/models/{deployable.model.pk}/").content.decode()
    assert f"?model={deployable.model.pk}&amp;tenant=acme" in page


def test_an_operator_deletes_a_model_unless_a_task_uses_it(deployable):
    client = signed_in(deployable.member)
    url = f"/models/{deployable.model.pk}/delete/"
    factories.TaskFactory(tenant=deployable.tenant, model=deployable.model, name="chat")
    refused = client.post(url)
    assert re.findall(r'form-error" data-code="(\w+)"', refused.content.decode()) == ["model_in_use"]
    assert Model.objects.filter(pk=deployable.model.pk).exists()

    spare = factories.ModelFactory(tenant=deployable.tenant, name="spare")
    assert client.get(f"/models/{spare.pk}/delete/").status_code == 200
    deleted = client.post(f"/models/{spare.pk}/delete/")
    assert deleted.status_code == 302 and deleted.url == "/models/"
    assert not Model.objects.filter(pk=spare.pk).exists()
    assert AuditEntry.objects.filter(action="model.delete", object_id=str(spare.pk)).exists()


def test_every_user_reads_the_runtime_images_only_admins_create_and_publish(deployable):
    image = RuntimeImage.objects.get(slug="normal-nvidia")
    factories.RuntimeImageVersionFactory(image=image, version="2.0.0")
    member = signed_in(deployable.member)
    page = member.get("/images/").content.decode()
    section = re.search(r'id="image-normal-nvidia".*?</section>', page, re.DOTALL).group(0)
    versions = re.findall(r'data-version="([^"]+)"', section)
    assert versions[0] == "2.0.0" and len(versions) == 2
    assert "publish-form" not in page and 'id="create-image"' not in page
    assert member.get("/images/new/").status_code == 404
    assert member.post("/images/normal-nvidia/publish/", {"version": "9.9.9"}).status_code == 404
    assert not image.versions.filter(version="9.9.9").exists()


def test_a_platform_admin_creates_an_image_refused_slugs_show_their_code(deployable, platform_admin):
    admin = signed_in(platform_admin)
    assert admin.get("/images/new/").status_code == 200
    assert (
        "tasks keep their version until someone updates them"
        in admin.get("/images/normal-nvidia/publish/").content.decode()
    )
    assert admin.get("/images/no-such-image/publish/").status_code == 404
    fields = {"slug": "vllm-next", "name": "vLLM next", "mode": "high_performance", "vendor": "nvidia",
              "repository": "registry.example.com/aicp/vllm"}  # fmt: skip
    assert admin.post("/images/new/", fields).status_code == 302
    assert RuntimeImage.objects.get(slug="vllm-next").repository == "registry.example.com/aicp/vllm"
    again = admin.post("/images/new/", fields)
    assert field_codes(again.content.decode(), "slug") == ["slug_taken"]


def test_publishing_through_the_console_leaves_every_tasks_version_alone(deployable, platform_admin):
    task = factories.TaskFactory(tenant=deployable.tenant, model=deployable.model, compute_pool=deployable.pool)
    pinned = task.runtime_image_version
    admin = signed_in(platform_admin)
    list_page = admin.get("/images/").content.decode()
    assert "tasks keep their version until someone updates them" in list_page

    url = f"/images/{pinned.image.slug}/publish/"
    published = admin.post(url, {"version": "99.0.0", "digest": ""})
    assert published.status_code == 302
    assert RuntimeImageVersion.objects.filter(image=pinned.image, version="99.0.0").exists()
    task.refresh_from_db()
    assert task.runtime_image_version_id == pinned.pk
    assert AuditEntry.objects.filter(action="runtime_image_version.publish").count() == 1

    again = admin.post(url, {"version": "99.0.0"})
    assert field_codes(again.content.decode(), "version") == ["runtime_image_version_taken"]
    bad = admin.post(url, {"version": "a tag?", "digest": "md5:1"}).content.decode()
    assert field_codes(bad, "version") == ["invalid"] and field_codes(bad, "digest") == ["invalid"]
