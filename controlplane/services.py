"""Service helpers every app uses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from django.db import IntegrityError, models, transaction

from controlplane.errors import SlugTakenError
from tenancy.audit import audit_record, audit_snapshot

M = TypeVar("M", bound=models.Model)


def pick(fields: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """The entries of ``fields`` a service accepts; anything else a caller sent is ignored."""
    allowed = set(allowed)
    return {key: value for key, value in fields.items() if key in allowed}


def slugged_create(obj: M, *, actor, action: str, tenant=None) -> M:
    """Validate and insert ``obj``, whose ``slug`` is unique among its kind, and audit it.

    A taken slug is a ``SlugTakenError``: looked up first for a clear message, and caught again from the
    unique index should two requests race for the same slug, so it is never an IntegrityError (a 500).
    """
    noun = obj._meta.verbose_name
    article = "An" if noun[0] in "aeiou" else "A"
    message = f"{article} {noun} with the id '{obj.slug}' already exists."
    with transaction.atomic():
        if type(obj)._default_manager.filter(slug=obj.slug).exists():
            raise SlugTakenError(message)
        obj.full_clean(validate_unique=False)
        try:
            with transaction.atomic():
                obj.save()
        except IntegrityError as exc:
            raise SlugTakenError(message) from exc
        audit_record(actor=actor, action=action, obj=obj, tenant=tenant, after=audit_snapshot(obj))
    return obj
