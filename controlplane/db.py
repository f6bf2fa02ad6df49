"""Bulk writes the ORM does not offer: insert-if-new with the inserted keys, and counters added under lock."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connection, models
from django.db.models import Q


def insert_new(model: type[models.Model], objs: Sequence[models.Model]) -> set[Any]:
    """INSERT every object whose primary key is not stored yet, in one statement; return the keys inserted.

    ``INSERT ... ON CONFLICT (pk) DO NOTHING RETURNING pk`` (PostgreSQL; SQLite ≥ 3.35): a concurrent insert
    of the same key waits for the other transaction and is then skipped, so whatever the caller derives
    from the returned keys (roll-ups, usage) counts each object exactly once.
    """
    if not objs:
        return set()
    meta = model._meta
    fields = meta.concrete_fields
    quote = connection.ops.quote_name
    prepare = [_preparer(f) for f in fields]
    params: list[Any] = []
    for obj in objs:
        params.extend(getattr(obj, f.attname) if p is None else p(obj) for f, p in zip(fields, prepare, strict=True))
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES {', '.join([row] * len(objs))} "
        f"ON CONFLICT ({quote(meta.pk.column)}) DO NOTHING RETURNING {quote(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {meta.pk.to_python(value) for (value,) in cursor.fetchall()}


def _preparer(field: models.Field) -> Callable[[models.Model], Any] | None:
    """How to turn a field's value into a query parameter; None when the value goes as it is.

    On PostgreSQL, psycopg adapts UUIDs, numbers, booleans, strings and aware datetimes itself, so only JSON
    (and fields that fill themselves in on save) go through Django's preparation; a batch of a thousand rows
    saves several thousand calls. Other databases prepare every field.
    """
    fills_itself = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    if connection.vendor == "postgresql" and not fills_itself and not isinstance(field, models.JSONField):
        return None
    return lambda obj: field.get_db_prep_save(field.pre_save(obj, True), connection)


def accumulate(
    model: type[models.Model],
    key_fields: Sequence[str],
    additions: dict[tuple, Callable[[models.Model], None]],
    update_fields: Iterable[str],
    **common: Any,
) -> None:
    """Apply ``additions[key](row)`` to the rows of ``model`` named by ``key_fields`` (plus ``common``), creating
    missing rows first; the rows are locked in key order, so concurrent writers queue instead of losing counts.

    Runs inside the caller's transaction.
    """
    if not additions:
        return
    keys = sorted(additions)
    model.objects.bulk_create(
        [model(**common, **dict(zip(key_fields, key, strict=True))) for key in keys], ignore_conflicts=True
    )
    match = Q()
    for key in keys:
        match |= Q(**dict(zip(key_fields, key, strict=True)))
    rows = list(model.objects.select_for_update().filter(match, **common).order_by(*key_fields))
    for row in rows:
        additions[tuple(getattr(row, name) for name in key_fields)](row)
    model.objects.bulk_update(rows, list(update_fields))
