"""Receiving uploaded files: straight to disk, hashed on the way, refused once they pass the size limit.

Django hands every multipart file part to this handler chunk by chunk (``FILE_UPLOAD_HANDLERS``). Each file
goes to a temporary file from its first byte, so a 100 GB model never sits in memory, and its SHA-256 is
computed while it arrives, so that checking a checksum or digesting the model folder never reads the
weights a second time. The limit (``AICP_MODEL_UPLOAD_MAX_BYTES``) counts every file of the request; a
request past it stops at once and answers 413. Other multipart uploads pass through unchanged, with a
``sha256`` attribute they may ignore.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from rest_framework import status
from rest_framework.exceptions import APIException

from catalog.constants import MULTIPART_OVERHEAD_ALLOWANCE_BYTES


class UploadTooLargeError(APIException, RequestDataTooBig):
    """413 in the API (``{"code": "upload_too_large", ...}``); outside DRF, Django answers it as a
    ``RequestDataTooBig``: a 400, never a 500."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "upload_too_large"
    default_detail = "The upload is larger than the platform accepts."


def upload_limit_bytes() -> int:
    return int(settings.AICP_MODEL_UPLOAD_MAX_BYTES)


def too_large(limit: int) -> UploadTooLargeError:
    return UploadTooLargeError(f"The upload is larger than the limit of {limit} bytes (AICP_MODEL_UPLOAD_MAX_BYTES).")


class HashingSizeLimitedUploadHandler(TemporaryFileUploadHandler):
    """A temporary-file handler that records each file's SHA-256 as ``uploaded_file.sha256`` and aborts the
    request once the files together exceed the upload limit."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.received_bytes = 0
        limit = upload_limit_bytes()
        if content_length and content_length > limit + MULTIPART_OVERHEAD_ALLOWANCE_BYTES:
            raise too_large(limit)
        return None

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.hash = hashlib.sha256()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received_bytes = getattr(self, "received_bytes", 0) + len(raw_data)
        limit = upload_limit_bytes()
        if self.received_bytes > limit:
            self.upload_interrupted()  # closes and removes the partial temporary file
            raise too_large(limit)
        self.hash.update(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size: int):
        uploaded = super().file_complete(file_size)
        uploaded.sha256 = self.hash.hexdigest()
        return uploaded
