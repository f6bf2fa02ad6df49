"""The catalogue's services: rules, refusals and audit entries, without the API in between."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog import services
from catalog.models import Model, ModelFamily, RuntimeImage, RuntimeImageVersion
from catalog.selectors import model_family_guess
from controlplane.errors import (
    ModelInUseError,
    ModelNameTakenError,
    ModelUploadError,
    RuntimeImageInUseError,
    RuntimeImageVersionTakenError,
    SlugTakenError,
)
from tenancy.models import AuditEntry
from tests import factories
from tests.catalog.conftest import files_under
from tests.catalog.modelfiles import tiny_model_files

pytestmark = pytest.mark.django_db


def uploaded(files: dict[str, bytes]) -> list[tuple[str, SimpleUploadedFile]]:
    return [(path, SimpleUploadedFile(path, content)) for path, content in files.items()]


@pytest.fixture
def admin():
    return factories.PlatformAdminFactory()


def test_upload_through_the_service_accepts_files_held_in_memory(admin, storage_root):
    tenant = factories.TenantFactory(slug="acme")
    model = services.model_upload(actor=admin, tenant=tenant, name="tiny", files=uploaded(tiny_model_files()))
    assert model.status == "ready"
    assert files_under(storage_root / model.storage_path) == sorted(tiny_model_files())


def test_upload_needs_files_or_an_archive(admin):
    with pytest.raises(ModelUploadError):
        services.model_upload(actor=admin, tenant=factories.TenantFactory(), name="empty")


def test_two_files_with_one_path_are_refused(admin, storage_root):
    files = [("config.json", SimpleUploadedFile("a", b"{}")), ("./config.json", SimpleUploadedFile("b", b"{}"))]
    with pytest.raises(ModelUploadError, match=r"Two files have the path 'config\.json'"):
        services.model_upload(actor=admin, tenant=factories.TenantFactory(), name="twice", files=files)
    assert files_under(storage_root) == []


def test_a_model_renamed_to_a_taken_name_is_refused(admin):
    model = factories.ModelFactory(name="a")
    factories.ModelFactory(tenant=model.tenant, name="b")
    with pytest.raises(ModelNameTakenError):
        services.model_update(actor=admin, model=model, name="b")
    renamed = services.model_update(actor=admin, model=model, name="c", description="renamed")
    assert (renamed.name, renamed.description) == ("c", "renamed")
    entry = AuditEntry.objects.get(action="model.update")
    assert (entry.tenant_id, entry.before, entry.after) == (
        model.tenant_id,
        {"description": "", "name": "a"},
        {"description": "renamed", "name": "c"},
    )


def test_a_model_in_use_cannot_be_deleted(admin):
    task = factories.TaskFactory(name="chat")
    with pytest.raises(ModelInUseError, match=r"inference tasks \(chat\)"):
        services.model_delete(actor=admin, model=task.model)
    assert Model.objects.filter(pk=task.model_id).exists()


def test_deleting_a_model_removes_its_files_once_committed(admin, storage_root, django_capture_on_commit_callbacks):
    tenant = factories.TenantFactory()
    model = services.model_upload(actor=admin, tenant=tenant, name="tiny", files=uploaded(tiny_model_files()))
    folder = storage_root / model.storage_path
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.model_delete(actor=admin, model=model)
    assert folder.is_dir()  # nothing is removed before the deletion commits
    for callback in callbacks:
        callback()
    assert not folder.exists()
    assert not Model.objects.filter(pk=model.pk).exists()
    assert AuditEntry.objects.filter(action="model.delete", object_id=str(model.pk)).exists()


def test_publishing_a_version_leaves_pinned_tasks_alone(admin):
    task = factories.TaskFactory()
    pinned = task.runtime_image_version
    newer = services.runtime_image_version_publish(actor=admin, image=pinned.image, version="9.9.9")

    task.refresh_from_db()
    assert task.runtime_image_version_id == pinned.pk != newer.pk
    assert task.generation == 1 and task.status == "pending"
    assert AuditEntry.objects.get(action="runtime_image_version.publish").after["version"] == "9.9.9"


def test_a_version_is_published_once(admin):
    version = factories.RuntimeImageVersionFactory(version="1.0.0")
    with pytest.raises(RuntimeImageVersionTakenError):
        services.runtime_image_version_publish(actor=admin, image=version.image, version="1.0.0")
    assert RuntimeImageVersion.objects.filter(image=version.image).count() == 1


def test_an_image_pinned_by_a_task_cannot_be_deleted_or_repointed(admin):
    image = factories.TaskFactory().runtime_image_version.image
    with pytest.raises(RuntimeImageInUseError):
        services.runtime_image_delete(actor=admin, image=image)
    with pytest.raises(RuntimeImageInUseError) as refused:
        services.runtime_image_update(actor=admin, image=image, repository="registry.example.com/other")
    assert refused.value.field == "repository"

    renamed = services.runtime_image_update(actor=admin, image=image, name="Renamed", repository=image.repository)
    assert renamed.name == "Renamed"


def test_an_unused_image_is_deleted_with_its_versions(admin):
    version = factories.RuntimeImageVersionFactory()
    services.runtime_image_delete(actor=admin, image=version.image)
    assert not RuntimeImage.objects.filter(pk=version.image_id).exists()
    assert not RuntimeImageVersion.objects.filter(pk=version.pk).exists()


def test_slugs_are_unique(admin):
    services.runtime_image_create(
        actor=admin, slug="vllm", name="vLLM", mode="high_performance", vendor="nvidia", repository="r/vllm"
    )
    with pytest.raises(SlugTakenError):
        services.runtime_image_create(
            actor=admin, slug="vllm", name="vLLM", mode="high_performance", vendor="nvidia", repository="r/vllm"
        )
    with pytest.raises(SlugTakenError):
        services.model_family_create(
            actor=admin, slug="llama2-7b", name="Llama", architecture="LlamaForCausalLM", parameter_count=7
        )


def test_deleting_a_family_keeps_its_models(admin):
    family = factories.ModelFamilyFactory()
    model = factories.ModelFactory(family=family)
    services.model_family_delete(actor=admin, family=family)
    model.refresh_from_db()
    assert model.family is None and model.parameter_count == 6_738_415_616


@pytest.mark.parametrize(
    ("architecture", "parameters", "family"),
    [
        ("LlamaForCausalLM", 6_738_415_616, "llama2-7b"),
        ("LlamaForCausalLM", 7_241_732_096, "llama2-7b"),  # a Mistral-sized Llama: within 15%
        ("LlamaForCausalLM", 13_015_864_320, "llama2-13b"),
        ("LlamaForCausalLM", 34_388_917_248, "yi-1-5-34b"),
        ("Qwen2ForCausalLM", 72_706_203_648, "qwen2-72b"),
        ("BaichuanForCausalLM", 13_896_668_160, "baichuan2-13b"),
        ("LlamaForCausalLM", 10_000_000_000, None),  # between 7B and 13B: no family
        ("MistralForCausalLM", 7_241_732_096, None),
        ("LlamaForCausalLM", None, None),
    ],
)
def test_family_guess(architecture, parameters, family):
    guess = model_family_guess(architecture=architecture, parameter_count=parameters)
    assert (guess.slug if guess else None) == family


def test_family_guess_ignores_families_not_validated():
    ModelFamily.objects.filter(slug="llama2-7b").update(validated=False)
    assert model_family_guess(architecture="LlamaForCausalLM", parameter_count=6_738_415_616) is None


def test_a_disk_that_refuses_the_files_fails_the_model_and_leaves_no_staging(admin, storage_root, monkeypatch):
    def disk_full(staged, storage_path):
        raise OSError(28, "No space left on device", "/somewhere/private")

    monkeypatch.setattr(services.storage, "place", disk_full)
    model = services.model_upload(
        actor=admin, tenant=factories.TenantFactory(), name="tiny", files=uploaded(tiny_model_files())
    )
    assert (model.status, model.status_message) == ("failed", "the files could not be stored (No space left on device)")
    assert files_under(storage_root) == []


def test_a_model_deleted_while_it_was_inspected_leaves_no_files(admin, storage_root, monkeypatch):
    inspect = services.inspect_model_folder

    def deleted_meanwhile(folder):
        Model.objects.filter(name="tiny").delete()
        return inspect(folder)

    monkeypatch.setattr(services, "inspect_model_folder", deleted_meanwhile)
    with pytest.raises(ModelUploadError, match="deleted while it was being uploaded"):
        services.model_upload(
            actor=admin, tenant=factories.TenantFactory(), name="tiny", files=uploaded(tiny_model_files())
        )
    assert files_under(storage_root) == []
