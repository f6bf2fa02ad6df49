from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

UPLOAD_URL = "/api/v1/models/upload/"


@pytest.fixture(autouse=True)
def storage_root(settings, tmp_path) -> Path:
    """Models and upload temporary files go to this test's own folders, never into the repository."""
    settings.AICP_STORAGE_ROOT = tmp_path / "storage"
    uploads = tmp_path / "upload-tmp"
    uploads.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(uploads)
    return settings.AICP_STORAGE_ROOT


@pytest.fixture
def upload_tmp(storage_root) -> Path:
    return storage_root.parent / "upload-tmp"


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def upload(client, *, files: dict[str, bytes] | None = None, archive=None, checksums=None, **fields):
    """POST a multipart model upload: ``files`` as ``{relative path: content}`` (sent with ``paths`` when any
    is nested) or ``archive`` as ``(file name, content)``."""
    data = {"name": "tiny", **fields}
    if files is not None:
        data["files"] = [SimpleUploadedFile(path.rsplit("/", 1)[-1], content) for path, content in files.items()]
        if any("/" in path for path in files):
            data["paths"] = list(files)
    if archive is not None:
        data["archive"] = SimpleUploadedFile(*archive)
    if checksums is not None:
        data["checksums"] = json.dumps(checksums)
    return client.post(UPLOAD_URL, data, format="multipart")
