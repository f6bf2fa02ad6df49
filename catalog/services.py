"""Every write to the catalogue: model families, runtime images and their versions, models (upload, update,
delete). Each runs in one transaction with its audit entry and refuses with a ``PlatformRuleError``.

Rule 6 (a new runtime image version never changes a running task) holds by construction: publishing only
adds a version row; tasks pin the version they were deployed with, and only ``task_update_image`` moves
them. What *would* change a pinned task under it (deleting its image, pointing the image at another
repository, mode or vendor) is refused while any task pins one of the image's versions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from catalog import storage
from catalog.choices import ModelStatus
from catalog.inspection import InspectionError, ModelInspection, inspect_model_folder, weights_format
from catalog.models import Model, ModelFamily, RuntimeImage, RuntimeImageVersion
from catalog.paths import UnsafePathError, safe_relative_path
from catalog.selectors import model_family_guess
from controlplane.errors import (
    ModelInUseError,
    ModelNameTakenError,
    ModelUploadError,
    RuntimeImageInUseError,
    RuntimeImageVersionTakenError,
)
from controlplane.services import pick, slugged_create
from tenancy.audit import audit_record, audit_snapshot
from tenancy.models import Tenant

FAMILY_FIELDS = ("name", "architecture", "parameter_count", "validated")
IMAGE_FIELDS = ("name", "description", "mode", "vendor", "repository")
# Fields that decide what a pinned version pulls and where it may run.
IMAGE_PULL_FIELDS = ("mode", "vendor", "repository")
MODEL_FIELDS = ("name", "description", "family")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# Model families: platform objects that tell tenants which models the platform has validated.


def model_family_create(*, actor, slug: str, **fields: Any) -> ModelFamily:
    family = ModelFamily(slug=slug, **pick(fields, FAMILY_FIELDS))
    return slugged_create(family, actor=actor, action="model_family.create")


def model_family_update(*, actor, family: ModelFamily, **fields: Any) -> ModelFamily:
    with transaction.atomic():
        family = ModelFamily.objects.select_for_update().get(pk=family.pk)
        before = audit_snapshot(family)
        for key, value in pick(fields, FAMILY_FIELDS).items():
            setattr(family, key, value)
        family.full_clean(validate_unique=False)
        family.save()
        audit_record(actor=actor, action="model_family.update", obj=family, before=before, after=audit_snapshot(family))
    return family


def model_family_delete(*, actor, family: ModelFamily) -> None:
    """Models of the family keep everything they know about themselves; only their family link is cleared."""
    with transaction.atomic():
        family = ModelFamily.objects.select_for_update().get(pk=family.pk)
        audit_record(actor=actor, action="model_family.delete", obj=family, before=audit_snapshot(family))
        family.delete()


# Runtime images and their versions.


def _pinning_tasks(image: RuntimeImage) -> int:
    return RuntimeImageVersion.objects.filter(image=image, tasks__isnull=False).values("tasks").count()


def runtime_image_create(*, actor, slug: str, **fields: Any) -> RuntimeImage:
    image = RuntimeImage(slug=slug, **pick(fields, IMAGE_FIELDS))
    return slugged_create(image, actor=actor, action="runtime_image.create")


def runtime_image_update(*, actor, image: RuntimeImage, **fields: Any) -> RuntimeImage:
    """Rename or describe an image freely; change its repository, mode or vendor only while no task pins one
    of its versions, since those decide what a pinned task's pods pull and where they may run."""
    with transaction.atomic():
        image = RuntimeImage.objects.select_for_update().get(pk=image.pk)
        before = audit_snapshot(image)
        changes = {key: value for key, value in pick(fields, IMAGE_FIELDS).items() if getattr(image, key) != value}
        pull_changes = sorted(set(changes) & set(IMAGE_PULL_FIELDS))
        if pull_changes and (pinned := _pinning_tasks(image)):
            raise RuntimeImageInUseError(
                f"{pinned} inference task(s) pin versions of '{image.slug}'; its {', '.join(pull_changes)} cannot "
                "change under them. Publish a new image instead.",
                field=pull_changes[0],
            )
        for key, value in changes.items():
            setattr(image, key, value)
        image.full_clean(validate_unique=False)
        image.save()
        audit_record(actor=actor, action="runtime_image.update", obj=image, before=before, after=audit_snapshot(image))
    return image


def runtime_image_delete(*, actor, image: RuntimeImage) -> None:
    """Refused while any task pins one of the image's versions; the versions go with the image."""
    with transaction.atomic():
        image = RuntimeImage.objects.select_for_update().get(pk=image.pk)
        refusal = f"Inference tasks pin versions of runtime image '{image.slug}'; update or delete them first."
        if _pinning_tasks(image):
            raise RuntimeImageInUseError(refusal)
        audit_record(actor=actor, action="runtime_image.delete", obj=image, before=audit_snapshot(image))
        try:
            with transaction.atomic():
                image.delete()
        except (ProtectedError, IntegrityError) as exc:  # a task pinned a version since the check
            raise RuntimeImageInUseError(refusal) from exc


def runtime_image_version_publish(
    *, actor, image: RuntimeImage, version: str, digest: str = "", release_notes: str = ""
) -> RuntimeImageVersion:
    """Publish a version: new tasks get it, running tasks keep theirs and show "update available"."""
    published = RuntimeImageVersion(image=image, version=version, digest=digest, release_notes=release_notes)
    published.full_clean(exclude=["image"], validate_unique=False, validate_constraints=False)
    taken = f"Runtime image '{image.slug}' already has version '{version}'."
    with transaction.atomic():
        if RuntimeImageVersion.objects.filter(image=image, version=version).exists():
            raise RuntimeImageVersionTakenError(taken)
        try:
            with transaction.atomic():
                published.save()
        except IntegrityError as exc:
            raise RuntimeImageVersionTakenError(taken) from exc
        audit_record(
            actor=actor, action="runtime_image_version.publish", obj=published, after=audit_snapshot(published)
        )
    return published


# Models.


def _name_taken(tenant: Tenant, name: str) -> ModelNameTakenError:
    return ModelNameTakenError(f"Tenant '{tenant.slug}' already has a model named '{name}'.")


def _ensure_model_name_free(tenant: Tenant, name: str, *, exclude_pk: int | None = None) -> None:
    if Model.objects.filter(tenant=tenant, name=name).exclude(pk=exclude_pk).exists():
        raise _name_taken(tenant, name)


def _declared_checksums(staged: storage.StagedUpload, checksums: Mapping[str, str] | None) -> dict[str, str]:
    """The uploader's ``{path: sha256}``, each naming a file of the upload."""
    declared = {}
    for name, digest in (checksums or {}).items():
        try:
            path = safe_relative_path(name)
        except UnsafePathError:
            path = None
        if path not in staged.files:
            raise ModelUploadError(f"checksums names '{name}', which is not a file of the upload.", field="checksums")
        if not isinstance(digest, str) or not _SHA256.match(digest.lower()):
            raise ModelUploadError(f"The checksum of '{name}' is not a SHA-256 hex digest.", field="checksums")
        declared[path] = digest.lower()
    return declared


def _model_create(*, actor, tenant: Tenant, name: str, **fields: Any) -> Model:
    model = Model(tenant=tenant, name=name, status=ModelStatus.UPLOADING, created_by=actor, **fields)
    model.clean_fields(exclude=["tenant", "family", "created_by"])
    with transaction.atomic():
        try:
            with transaction.atomic():
                model.save()
        except IntegrityError as exc:  # the same name uploaded twice at once
            raise _name_taken(tenant, name) from exc
        audit_record(actor=actor, action="model.upload", obj=model, tenant=tenant, after=audit_snapshot(model))
    return model


def model_upload(
    *,
    actor,
    tenant: Tenant,
    name: str,
    description: str = "",
    family: ModelFamily | None = None,
    encrypted: bool = False,
    compressed: bool = False,
    files: Sequence[tuple[str, UploadedFile]] = (),
    archive: UploadedFile | None = None,
    archive_sha256: str = "",
    checksums: Mapping[str, str] | None = None,
) -> Model:
    """Store and inspect an uploaded model: ``files`` as ``(relative path, file)`` pairs, or one ``archive``.

    An upload that cannot be a model (no files, both kinds, unsafe paths, not an archive, a name the
    tenant already uses) raises before anything is stored. Any other becomes a model at once, in
    ``uploading``; its folder moves into place (``inspecting``), then the declared checksums and the
    inspection decide between ``ready`` and ``failed``. A failed model stays, with the reason in
    ``status_message``, so that the uploader sees why rather than a vanished upload.
    """
    if bool(files) == bool(archive):
        raise ModelUploadError("Send either the model's files or one archive of them.", field="files")
    if archive_sha256 and not archive:
        raise ModelUploadError("sha256 checks an archive; for separate files send checksums.", field="sha256")
    if archive_sha256 and not _SHA256.match(archive_sha256.lower()):
        raise ModelUploadError("sha256 is not a SHA-256 hex digest.", field="sha256")
    _ensure_model_name_free(tenant, name)

    staged = storage.stage_files(files) if files else storage.stage_archive(archive)
    try:
        declared = _declared_checksums(staged, checksums)
        model = _model_create(
            actor=actor,
            tenant=tenant,
            name=name,
            description=description,
            family=family,
            encrypted=encrypted,
            compressed=compressed,
        )
    except BaseException:
        staged.discard()
        raise

    storage_path = storage.model_storage_path(tenant.slug, model.pk)
    try:
        folder = storage.place(staged, storage_path)
    except OSError as exc:
        staged.discard()
        reason = f"the files could not be stored ({exc.strerror or type(exc).__name__})"
        return _model_record_outcome(actor=actor, model=model, problems=[reason])
    Model.objects.filter(pk=model.pk).update(status=ModelStatus.INSPECTING, storage_path=storage_path)

    problems = storage.checksum_mismatches(staged.files, declared)
    if archive_sha256 and staged.archive_sha256 != archive_sha256.lower():
        expected, actual = archive_sha256.lower(), staged.archive_sha256
        problems.insert(0, f"checksum mismatch for the archive: expected {expected}, got {actual}")
    inspection = None
    if not problems:
        try:
            inspection = inspect_model_folder(folder)
        except InspectionError as exc:
            problems.append(str(exc))
    return _model_record_outcome(
        actor=actor,
        model=model,
        problems=problems,
        inspection=inspection,
        staged=staged,
        storage_path=storage_path,
    )


def _model_record_outcome(
    *,
    actor,
    model: Model,
    problems: list[str],
    inspection: ModelInspection | None = None,
    staged: storage.StagedUpload | None = None,
    storage_path: str = "",
) -> Model:
    """Record what the upload turned out to be: ``ready`` with the inspected facts, or ``failed`` with why."""
    with transaction.atomic():
        locked = Model.objects.select_for_update().filter(pk=model.pk).first()
        if locked is None:  # deleted while it was uploading: its files must not outlive it
            storage.remove_model_files(storage_path)
            raise ModelUploadError("The model was deleted while it was being uploaded.")
        model = locked
        before = audit_snapshot(model)
        model.storage_path = storage_path
        if staged is not None:
            model.size_bytes = staged.size_bytes
            model.checksum_sha256 = storage.folder_digest(staged.files)
            model.format = weights_format(staged.files)
        if inspection is not None:
            model.config = inspection.config
            model.architecture = inspection.architecture[:100]
            model.dtype = inspection.dtype[:16]
            model.context_length = inspection.context_length
            model.parameter_count = inspection.parameter_count
            model.compressed = model.compressed or inspection.quantized
            if model.family_id is None:
                model.family = model_family_guess(
                    architecture=inspection.architecture, parameter_count=inspection.parameter_count
                )
        model.status = ModelStatus.FAILED if problems else ModelStatus.READY
        model.status_message = "; ".join(problems) or "; ".join(inspection.notes if inspection else [])
        model.save()
        audit_record(
            actor=actor,
            action="model.inspect",
            obj=model,
            tenant=model.tenant,
            before=before,
            after=audit_snapshot(model),
        )
    return model


def model_update(*, actor, model: Model, **fields: Any) -> Model:
    """Rename, describe or re-family a model. Its files and inspected facts are fixed by its upload."""
    with transaction.atomic():
        model = Model.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=model.pk)
        before = audit_snapshot(model)
        changes = pick(fields, MODEL_FIELDS)
        if "name" in changes:
            _ensure_model_name_free(model.tenant, changes["name"], exclude_pk=model.pk)
        for key, value in changes.items():
            setattr(model, key, value)
        model.clean_fields(exclude=["tenant", "family", "created_by"])
        try:
            with transaction.atomic():
                model.save()
        except IntegrityError as exc:
            raise _name_taken(model.tenant, model.name) from exc
        after = audit_snapshot(model)
        audit_record(actor=actor, action="model.update", obj=model, tenant=model.tenant, before=before, after=after)
    return model


def model_delete(*, actor, model: Model) -> None:
    """Refused while any inference task (in any state) uses the model. Its files are removed once the
    deletion has committed, so a rolled-back delete never loses them."""
    with transaction.atomic():
        model = Model.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=model.pk)
        task_names = list(model.tasks.order_by("name").values_list("name", flat=True)[:4])
        refusal = f"Model '{model.name}' is used by inference tasks ({', '.join(task_names[:3])}); delete them first."
        if task_names:
            raise ModelInUseError(refusal)
        audit_record(actor=actor, action="model.delete", obj=model, tenant=model.tenant, before=audit_snapshot(model))
        storage_path = model.storage_path
        try:
            with transaction.atomic():
                model.delete()
        except (ProtectedError, IntegrityError) as exc:  # a task was created since the check
            raise ModelInUseError(f"Model '{model.name}' is used by an inference task; delete it first.") from exc
        transaction.on_commit(lambda: storage.remove_model_files(storage_path))
