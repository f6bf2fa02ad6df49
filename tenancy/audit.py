"""The audit log: every service that writes records who changed what, with before and after.

Entries are written in the same transaction as the change, so a rolled-back write leaves no entry and a
committed one always has one.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from tenancy.models import AuditEntry, Tenant

# Never copied into the log: secret digests (and the salt a task's ingest token is derived from) stay in their
# own rows; timestamps the write itself bumps say nothing the entry's own time does not.
_NEVER_AUDITED = frozenset({"digest", "password", "updated_at", "ingest_token_salt", "ingest_token_digest"})


def audit_snapshot(obj: models.Model) -> dict[str, Any]:
    """The object's stored fields as JSON-ready values."""
    values = {
        field.attname: getattr(obj, field.attname)
        for field in obj._meta.concrete_fields
        if field.attname not in _NEVER_AUDITED
    }
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder))


def audit_record(
    *,
    actor,
    action: str,
    obj: models.Model,
    tenant: Tenant | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    if before is not None and after is not None:
        changed = {key for key in after if before.get(key) != after.get(key)}
        before = {key: before.get(key) for key in sorted(changed)}
        after = {key: after[key] for key in sorted(changed)}
    return AuditEntry.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=getattr(actor, "username", "") or "system",
        tenant=tenant,
        action=action,
        object_type=obj._meta.model_name,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        before=before,
        after=after,
    )
