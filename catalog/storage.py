"""Where a model's files live, and how an upload gets there.

Layout under ``settings.AICP_STORAGE_ROOT``::

    models/<tenant slug>/<model id>/   one folder per model, in Hugging Face layout
    .staging/<random>/                 uploads being unpacked, on the same file system

An upload is first *staged*: its files moved (or its archive unpacked) into a fresh staging folder, every
path checked and every file hashed. Only a staging that succeeded becomes a model: one rename puts the
folder in place, so a model folder is never half written and a refused upload leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from catalog.archives import ArchiveError, FileDigest, copy_hashing, extract_archive
from catalog.constants import COPY_CHUNK_BYTES, MODELS_FOLDER, STAGING_FOLDER
from catalog.paths import UnsafePathError, safe_relative_path
from catalog.uploads import upload_limit_bytes
from controlplane.errors import ModelUploadError


def storage_root() -> Path:
    return Path(settings.AICP_STORAGE_ROOT)


def model_storage_path(tenant_slug: str, model_id: int) -> str:
    """The model's folder relative to the storage root, as ``Model.storage_path`` records it."""
    return f"{MODELS_FOLDER}/{tenant_slug}/{model_id}"


@dataclass
class StagedUpload:
    root: Path
    folder: Path  # the model folder: ``root`` or, for an archive of one top-level folder, that folder
    files: dict[str, FileDigest] = field(default_factory=dict)
    archive_sha256: str = ""

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def size_bytes(self) -> int:
        return sum(digest.size for digest in self.files.values())


def _new_staging() -> Path:
    root = storage_root() / STAGING_FOLDER / uuid.uuid4().hex
    root.mkdir(parents=True)
    return root


def _checked_paths(named_files: Sequence[tuple[str, UploadedFile]]) -> list[str]:
    """The relative path of every file, refusing unsafe, repeated and clashing ones (``a`` and ``a/b``)."""
    paths = []
    for name, _ in named_files:
        try:
            path = safe_relative_path(name)
        except UnsafePathError as exc:
            raise ModelUploadError(f"'{name}': {exc}.", field="paths") from exc
        if path is None:
            raise ModelUploadError(f"'{name}' is not a file path.", field="paths")
        paths.append(path)
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            raise ModelUploadError(f"Two files have the path '{path}'.", field="files")
        seen.add(path)
    folders = {"/".join(path.split("/")[:depth]) for path in paths for depth in range(1, path.count("/") + 1)}
    if clash := sorted(folders & seen):
        raise ModelUploadError(f"'{clash[0]}' is both a file and a folder.", field="paths")
    return paths


def _too_large() -> ModelUploadError:
    return ModelUploadError(f"The files together exceed the upload limit of {upload_limit_bytes()} bytes.")


def _store(uploaded: UploadedFile, target: Path) -> FileDigest:
    """Move a received temporary file into place, reusing the digest the upload handler computed while it
    arrived; anything else (a file in memory) is copied and hashed here."""
    digest = getattr(uploaded, "sha256", None)
    if digest and hasattr(uploaded, "temporary_file_path"):
        shutil.move(uploaded.temporary_file_path(), target)
        return FileDigest(size=target.stat().st_size, sha256=digest)
    uploaded.seek(0)
    return copy_hashing(uploaded, target, budget=upload_limit_bytes(), on_exceed=_too_large)


def stage_files(named_files: Sequence[tuple[str, UploadedFile]]) -> StagedUpload:
    """Stage separately uploaded files, each under its relative path."""
    paths = _checked_paths(named_files)
    if sum(uploaded.size or 0 for _, uploaded in named_files) > upload_limit_bytes():
        raise _too_large()
    root = _new_staging()
    staged = StagedUpload(root=root, folder=root)
    try:
        for path, (_, uploaded) in zip(paths, named_files, strict=True):
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.files[path] = _store(uploaded, target)
    except BaseException:
        staged.discard()
        raise
    return staged


def file_sha256(uploaded: UploadedFile) -> str:
    if digest := getattr(uploaded, "sha256", None):
        return digest
    digest = hashlib.sha256()
    for chunk in uploaded.chunks(COPY_CHUNK_BYTES):
        digest.update(chunk)
    return digest.hexdigest()


def stage_archive(archive: UploadedFile) -> StagedUpload:
    """Stage an archive's files. An archive whose only top-level entry is a folder (``tar czf m.tgz llama/``)
    stages that folder as the model folder."""
    root = _new_staging()
    staged = StagedUpload(root=root, folder=root, archive_sha256=file_sha256(archive))
    try:
        archive.seek(0)
        files = extract_archive(archive.file, root, max_bytes=upload_limit_bytes())
    except ArchiveError as exc:
        staged.discard()
        raise ModelUploadError(str(exc), field="archive") from exc
    except BaseException:
        staged.discard()
        raise
    entries = list(root.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        prefix = f"{entries[0].name}/"
        staged.folder = entries[0]
        files = {path.removeprefix(prefix): digest for path, digest in files.items()}
    staged.files = dict(sorted(files.items()))
    return staged


def place(staged: StagedUpload, storage_path: str) -> Path:
    """Move the staged model folder to ``storage_path`` with one rename; files become readable by the
    serving pods, which do not run as the control plane's user."""
    final = storage_root() / storage_path
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():  # an orphan of an earlier database that handed out the same id
        shutil.rmtree(final)
    staged.folder.rename(final)
    staged.discard()
    for folder, _, names in os.walk(final):
        os.chmod(folder, 0o755)
        for name in names:
            os.chmod(os.path.join(folder, name), 0o644)
    return final


def remove_model_files(storage_path: str) -> None:
    """Delete a model's folder; a path outside the models folder (a corrupt row) is left alone."""
    if not storage_path:
        return
    models = (storage_root() / MODELS_FOLDER).resolve()
    folder = (storage_root() / storage_path).resolve()
    if folder.is_relative_to(models) and folder != models:
        shutil.rmtree(folder, ignore_errors=True)


def folder_digest(files: Mapping[str, FileDigest]) -> str:
    """The model's checksum: SHA-256 over one line ``"<relative path>\\t<file sha256>\\n"`` per file, sorted by
    path (UTF-8, ``/`` between folders). Anyone can recompute it from the files (``sha256sum`` per file), and it
    changes when any file's content, name or presence does."""
    lines = "".join(f"{path}\t{files[path].sha256}\n" for path in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def checksum_mismatches(files: Mapping[str, FileDigest], expected: Mapping[str, str]) -> list[str]:
    """A sentence per file whose digest differs from what the uploader declared."""
    return [
        f"checksum mismatch for {path}: expected {want}, got {files[path].sha256}"
        for path, want in sorted(expected.items())
        if files[path].sha256 != want.lower()
    ]
