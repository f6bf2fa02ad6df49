"""Uploading a model through the API: files or an archive in, a ready (or failed, with the reason) model out;
malformed and unsafe uploads refused with nothing stored."""

from __future__ import annotations

import io
import json
import stat
import zipfile

import pytest
from django.core.exceptions import RequestDataTooBig

from catalog.models import Model
from catalog.uploads import HashingSizeLimitedUploadHandler, UploadTooLargeError
from tenancy.choices import Role
from tenancy.models import AuditEntry
from tests import factories
from tests.catalog.conftest import files_under, upload
from tests.catalog.modelfiles import (
    TINY_CONFIG,
    TINY_PARAMETERS,
    folder_digest,
    sha256,
    tar_bytes,
    tiny_model_files,
    zip_bytes,
)
from tests.conftest import member_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    return factories.TenantFactory(slug="acme")


@pytest.fixture
def member(tenant):
    return member_of(tenant, Role.MEMBER)


def test_multi_file_upload_is_ready_with_facts_read_from_the_files(member, api_as, storage_root, upload_tmp):
    files = tiny_model_files()
    response = upload(api_as(member), files=files, description="a tiny llama")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "ready", body["status_message"]
    assert (body["tenant"], body["name"], body["description"]) == ("acme", "tiny", "a tiny llama")
    assert body["parameter_count"] == TINY_PARAMETERS
    assert (body["architecture"], body["dtype"], body["context_length"]) == ("LlamaForCausalLM", "bfloat16", 2048)
    assert body["format"] == "safetensors"
    assert body["size_bytes"] == sum(len(content) for content in files.values())
    assert body["checksum_sha256"] == folder_digest(files)
    assert body["config"] == TINY_CONFIG
    assert (body["encrypted"], body["compressed"], body["family"]) == (False, False, None)

    folder = storage_root / body["storage_path"]
    assert body["storage_path"] == f"models/acme/{body['id']}"
    assert files_under(folder) == sorted(files)
    assert (folder / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert stat.S_IMODE((folder / "config.json").stat().st_mode) == 0o644  # readable by the serving pods
    assert files_under(upload_tmp) == []
    assert files_under(storage_root / ".staging") == []


def test_sharded_weights_in_nested_folders_count_every_shard(member, api_as, storage_root):
    files = tiny_model_files(sharded=True)
    files["tokenizer/vocab.json"] = b"{}"
    body = upload(api_as(member), files=files).json()

    assert body["status"] == "ready", body["status_message"]
    assert body["parameter_count"] == TINY_PARAMETERS
    assert (storage_root / body["storage_path"] / "tokenizer" / "vocab.json").read_bytes() == b"{}"
    assert body["checksum_sha256"] == folder_digest(files)


@pytest.mark.parametrize(
    ("archive_name", "build"),
    [
        ("tiny.tar.gz", lambda files: tar_bytes(files)),
        ("tiny.tar", lambda files: tar_bytes(files, compression="")),
        ("tiny.zip", zip_bytes),
    ],
)
def test_archive_upload_is_ready(member, api_as, storage_root, archive_name, build):
    files = tiny_model_files()
    archive = build(files)
    body = upload(api_as(member), archive=(archive_name, archive), sha256=sha256(archive)).json()

    assert body["status"] == "ready", body["status_message"]
    assert body["parameter_count"] == TINY_PARAMETERS
    assert body["checksum_sha256"] == folder_digest(files)
    assert files_under(storage_root / body["storage_path"]) == sorted(files)


def test_an_archive_of_one_folder_unpacks_that_folder_as_the_model(member, api_as, storage_root):
    files = tiny_model_files()
    archive = tar_bytes({f"tiny-llama/{path}": content for path, content in files.items()})
    body = upload(api_as(member), archive=("tiny.tgz", archive)).json()

    assert body["status"] == "ready", body["status_message"]
    assert files_under(storage_root / body["storage_path"]) == sorted(files)


def test_a_checksum_mismatch_fails_the_model_naming_the_file(member, api_as):
    files = tiny_model_files()
    wrong = "0" * 64
    checksums = {"config.json": sha256(files["config.json"]), "model.safetensors": wrong}
    response = upload(api_as(member), files=files, checksums=checksums)

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "failed"
    assert body["status_message"] == (
        f"checksum mismatch for model.safetensors: expected {wrong}, got {sha256(files['model.safetensors'])}"
    )


def test_an_archive_checksum_mismatch_fails_the_model(member, api_as):
    archive = zip_bytes(tiny_model_files())
    body = upload(api_as(member), archive=("tiny.zip", archive), sha256="a" * 64).json()
    assert body["status"] == "failed"
    assert body["status_message"] == f"checksum mismatch for the archive: expected {'a' * 64}, got {sha256(archive)}"


def test_a_checksum_for_a_file_not_uploaded_is_refused(member, api_as, storage_root):
    response = upload(api_as(member), files=tiny_model_files(), checksums={"weights.bin": "0" * 64})
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "checksums": ["checksums names 'weights.bin', which is not a file of the upload."]
    }
    assert not Model.objects.exists()
    assert files_under(storage_root) == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda files: files.pop("config.json"), "config.json is missing"),
        (lambda files: files.pop("model.safetensors"), "no weights (*.safetensors or *.bin) found"),
        (lambda files: files.update({"config.json": b"{not json"}), "config.json is not valid JSON"),
        (lambda files: files.update({"model.safetensors": files["model.safetensors"][:-10]}), "is truncated"),
    ],
)
def test_a_folder_that_is_not_a_servable_model_fails_with_the_reason(member, api_as, storage_root, change, reason):
    files = tiny_model_files()
    change(files)
    response = upload(api_as(member), files=files)

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "failed"
    assert reason in body["status_message"]
    assert Model.objects.get(pk=body["id"]).status == "failed"
    assert files_under(storage_root / body["storage_path"]) == sorted(files)  # kept until the model is deleted


def test_quantization_config_marks_the_model_compressed(member, api_as):
    config = {**TINY_CONFIG, "quantization_config": {"quant_method": "gptq", "bits": 4}}
    body = upload(api_as(member), files=tiny_model_files(config=config)).json()
    assert body["status"] == "ready"
    assert body["compressed"] is True
    assert body["dtype"] == "int4"  # what one stored weight takes, for sizing


def test_declared_flags_are_stored(member, api_as):
    body = upload(api_as(member), files=tiny_model_files(), encrypted="true", compressed="true").json()
    assert (body["status"], body["encrypted"], body["compressed"]) == ("ready", True, True)


def test_the_family_is_guessed_from_architecture_and_size(member, api_as):
    """Without safetensors headers (PyTorch .bin weights) the size comes from config.json: a Llama of 6.7B
    parameters is the validated Llama2-7B family."""
    config = dict(factories.LLAMA_7B_CONFIG)
    files = {"config.json": json.dumps(config).encode(), "pytorch_model.bin": b"\x00" * 64}
    body = upload(api_as(member), files=files).json()

    assert body["status"] == "ready", body["status_message"]
    assert (body["format"], body["parameter_count"]) == ("pytorch", 6_738_415_616)
    assert (body["family"], body["family_name"]) == ("llama2-7b", "Llama2-7B")


def test_a_declared_family_wins_over_the_guess(member, api_as):
    body = upload(api_as(member), files=tiny_model_files(), family="qwen2-72b").json()
    assert body["family"] == "qwen2-72b"


@pytest.mark.parametrize(
    ("members", "links", "message"),
    [
        ({"../evil.txt": b"x"}, None, "'../evil.txt': the path leaves the model folder (..)."),
        ({"ok/../../evil.txt": b"x"}, None, "'ok/../../evil.txt': the path leaves the model folder (..)."),
        ({"/etc/evil.txt": b"x"}, None, "'/etc/evil.txt': the path is absolute"),
        ({}, {"config.json": "/etc/passwd"}, "'config.json' is a link"),
    ],
)
def test_an_unsafe_archive_is_refused_and_nothing_is_written(member, api_as, storage_root, members, links, message):
    archive = tar_bytes({**tiny_model_files(), **members}, links=links)
    response = upload(api_as(member), archive=("evil.tgz", archive))

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "model_upload_invalid"
    assert list(body["fields"]) == ["archive"]
    assert body["fields"]["archive"][0].startswith(message)
    assert not Model.objects.exists()
    assert files_under(storage_root) == []
    assert not (storage_root.parent / "evil.txt").exists()


def test_a_zip_with_a_traversing_member_is_refused(member, api_as, storage_root):
    response = upload(api_as(member), archive=("evil.zip", zip_bytes({"../../evil.txt": b"x"})))
    assert response.status_code == 400 and "leaves the model folder" in response.json()["message"]
    assert files_under(storage_root) == []


def test_a_zip_with_a_symlink_is_refused(member, api_as, storage_root):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", b"{}")
        link = zipfile.ZipInfo("model.safetensors")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    response = upload(api_as(member), archive=("link.zip", buffer.getvalue()))
    assert response.status_code == 400 and "'model.safetensors' is a link" in response.json()["message"]
    assert files_under(storage_root) == []


def test_a_file_that_is_not_an_archive_is_refused(member, api_as, storage_root):
    response = upload(api_as(member), archive=("model.zip", b"this is not an archive"))
    assert response.status_code == 400
    assert response.json()["fields"] == {"archive": ["This is not a .tar, .tar.gz/.tgz or .zip archive."]}
    assert not Model.objects.exists()


def test_an_archive_expanding_past_the_limit_is_refused(member, api_as, settings, storage_root):
    settings.AICP_MODEL_UPLOAD_MAX_BYTES = 100_000
    archive = zip_bytes({"config.json": b"{}", "model.safetensors": bytes(1_000_000)})  # ~1 KB compressed
    response = upload(api_as(member), archive=("bomb.zip", archive))

    assert response.status_code == 400
    assert response.json()["fields"]["archive"] == ["The archive expands to more than 100000 bytes."]
    assert not Model.objects.exists()
    assert files_under(storage_root) == []


def test_an_upload_past_the_size_limit_is_a_413_and_creates_nothing(member, api_as, settings, storage_root, upload_tmp):
    settings.AICP_MODEL_UPLOAD_MAX_BYTES = 1000
    response = upload(api_as(member), files={"config.json": b"{}", "model.safetensors": bytes(2000)})

    assert response.status_code == 413
    body = response.json()
    assert body["code"] == "upload_too_large"
    assert "1000 bytes" in body["message"] and body["fields"] == {}
    assert not Model.objects.exists()
    assert files_under(storage_root) == [] and files_under(upload_tmp) == []


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "files"),
        ({"files": tiny_model_files(), "archive": ("m.zip", b"zip")}, "archive"),
        ({"files": tiny_model_files(), "sha256": "a" * 64}, "sha256"),
        ({"archive": ("m.zip", b"zip"), "sha256": "not-hex"}, "sha256"),
    ],
)
def test_a_malformed_upload_names_the_field_and_stores_nothing(member, api_as, storage_root, data, field):
    response = upload(api_as(member), **data)
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not Model.objects.exists()
    assert files_under(storage_root) == []


def test_paths_must_match_the_files_one_to_one(member, api_as):
    client = api_as(member)
    files = tiny_model_files()
    response = upload(client, files=files, paths=["config.json"])
    assert response.status_code == 400 and "paths" in response.json()["fields"]
    nested_escape = {**files, "../escape.json": b"{}"}
    response = upload(client, files=nested_escape, paths=[*files, "../escape.json"])
    assert response.status_code == 400
    assert response.json()["fields"] == {"paths": ["'../escape.json': the path leaves the model folder (..)."]}


def test_a_taken_name_is_refused_before_anything_is_stored(member, api_as, tenant, storage_root):
    factories.ModelFactory(tenant=tenant, name="tiny")
    response = upload(api_as(member), files=tiny_model_files())

    assert response.status_code == 400
    assert response.json()["code"] == "model_name_taken"
    assert response.json()["fields"] == {"name": ["Tenant 'acme' already has a model named 'tiny'."]}
    assert Model.objects.count() == 1
    assert files_under(storage_root) == []


def test_the_same_name_in_another_tenant_is_fine(member, api_as):
    factories.ModelFactory(name="tiny")
    assert upload(api_as(member), files=tiny_model_files()).json()["status"] == "ready"


def test_a_viewer_cannot_upload(tenant, api_as, storage_root):
    response = upload(api_as(member_of(tenant, Role.VIEWER)), files=tiny_model_files())
    assert response.status_code == 403
    assert not Model.objects.exists() and files_under(storage_root) == []


def test_nobody_uploads_into_another_tenant(member, api_as, storage_root):
    other = factories.TenantFactory(slug="other")
    response = upload(api_as(member), files=tiny_model_files(), tenant="other")

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["tenant"]
    assert not Model.objects.filter(tenant=other).exists()
    assert files_under(storage_root) == []


def test_a_member_of_two_tenants_must_name_one(member, api_as):
    member_of(factories.TenantFactory(), Role.MEMBER, user=member)
    response = upload(api_as(member), files=tiny_model_files())
    assert response.status_code == 400 and list(response.json()["fields"]) == ["tenant"]
    assert upload(api_as(member), files=tiny_model_files(), tenant="acme").status_code == 201


def test_an_upload_is_audited_with_its_outcome(member, api_as, tenant):
    model_id = upload(api_as(member), files=tiny_model_files()).json()["id"]
    entries = AuditEntry.objects.filter(object_type="model", object_id=str(model_id)).order_by("id")
    assert [(e.action, e.tenant_id, e.actor_id) for e in entries] == [
        ("model.upload", tenant.pk, member.pk),
        ("model.inspect", tenant.pk, member.pk),
    ]
    assert entries[0].after["status"] == "uploading"
    assert entries[1].before["status"] == "inspecting" and entries[1].after["status"] == "ready"


def test_more_files_than_django_accepts_asks_for_an_archive(member, api_as, settings, storage_root):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    response = upload(api_as(member), files=tiny_model_files())
    assert response.status_code == 400
    assert response.json()["fields"] == {"files": ["More than 2 files; upload them as one archive."]}
    assert not Model.objects.exists() and files_under(storage_root) == []


def test_a_failed_model_still_records_its_weights_format(member, api_as):
    body = upload(api_as(member), files={"pytorch_model.bin": b"\x00" * 8}).json()
    assert (body["status"], body["status_message"], body["format"]) == ("failed", "config.json is missing", "pytorch")


def receive(handler: HashingSizeLimitedUploadHandler, chunks: list[bytes]):
    handler.handle_raw_input(None, {}, sum(map(len, chunks)), b"boundary")
    handler.new_file("files", "weights.bin", "application/octet-stream", None)
    for chunk in chunks:
        handler.receive_data_chunk(chunk, 0)
    return handler.file_complete(sum(map(len, chunks)))


def test_the_upload_handler_hashes_what_it_streams_to_disk(settings, upload_tmp):
    received = receive(HashingSizeLimitedUploadHandler(), [b"abc", b"def"])
    assert received.sha256 == sha256(b"abcdef")
    assert received.temporary_file_path().startswith(str(upload_tmp))
    assert received.read() == b"abcdef"
    received.close()


def test_the_upload_handler_stops_at_the_limit_and_removes_the_partial_file(settings, upload_tmp):
    settings.AICP_MODEL_UPLOAD_MAX_BYTES = 5
    with pytest.raises(UploadTooLargeError) as refused:
        receive(HashingSizeLimitedUploadHandler(), [b"abc", b"def"])
    assert isinstance(refused.value, RequestDataTooBig)  # a plain Django view answers it with a 400, not a 500
    assert files_under(upload_tmp) == []


def test_the_upload_handler_refuses_a_declared_length_far_past_the_limit(settings):
    settings.AICP_MODEL_UPLOAD_MAX_BYTES = 5
    with pytest.raises(UploadTooLargeError):
        HashingSizeLimitedUploadHandler().handle_raw_input(None, {}, 5 + 2 * 1024**2, b"boundary")
