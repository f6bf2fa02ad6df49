"""The per-task ingest token: what a task's adapter presents to the ingest API (``/api/v1/ingest/``).

A token is ``aicp_it_<task id>_<secret>``, the secret being ``HMAC-SHA256(SECRET_KEY, task id + salt)``.
The task row keeps the random ``salt`` and the SHA-256 ``digest`` of the whole token, never the token:

* the ingest API checks a presented token against the digest (``ingest_token_task``);
* the reconciler re-derives the plaintext from the salt whenever it renders the adapter's config
  (``ingest_token_of``), so a token does not have to be stored anywhere to reach the task's Secret;
* rotating (``ingest_token_issue`` on an existing task) draws a new salt: the old token is refused at once,
  and the next reconcile hands the new one to the adapter.

Changing ``DJANGO_SECRET_KEY`` changes every derived token while the digests stay: rotate each task's token
after such a change (``POST /api/v1/tasks/{id}/rotate-ingest-token/``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from django.conf import settings
from django.utils import timezone

from tenancy.credentials import credential_digest, credential_matches

INGEST_TOKEN_PREFIX = "aicp_it_"


def _derive(task_id: int, salt: str) -> str:
    mac = hmac.new(settings.SECRET_KEY.encode(), f"ingest:{task_id}:{salt}".encode(), hashlib.sha256).digest()
    return f"{INGEST_TOKEN_PREFIX}{task_id}_{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def ingest_token_issue(task) -> str:
    """Give ``task`` (saved, so it has an id) a new token and return it; the caller saves the task."""
    task.ingest_token_salt = secrets.token_hex(16)
    token = _derive(task.pk, task.ingest_token_salt)
    task.ingest_token_digest = credential_digest(token)
    task.ingest_token_rotated_at = timezone.now()
    return token


def ingest_token_of(task) -> str:
    """The task's current token, for its adapter's config. Empty before one was issued."""
    return _derive(task.pk, task.ingest_token_salt) if task.ingest_token_salt else ""


def ingest_token_task_id(presented: str) -> int | None:
    """The task id a token names, or None when it is not shaped like an ingest token."""
    if not presented.startswith(INGEST_TOKEN_PREFIX):
        return None
    task_id, sep, secret = presented[len(INGEST_TOKEN_PREFIX) :].partition("_")
    if not sep or not secret or not task_id.isdigit() or len(task_id) > 18:
        return None
    return int(task_id)


def ingest_token_matches(task, presented: str) -> bool:
    return bool(task.ingest_token_digest) and credential_matches(presented, task.ingest_token_digest)
