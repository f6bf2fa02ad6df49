"""Filters shared by the apps' FilterSets (the console's filter forms and the API's query parameters alike)."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

from core.storable import storable_instant


class InstantField(IsoDateTimeField):
    """An ISO 8601 time, as the UTC instant it is stored as (PostgreSQL refuses offsets past ±15:59, RFC 3339
    allows them up to ±23:59); a time UTC cannot express is a field error, not a database error."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return storable_instant(moment)
        except ValueError as exc:
            raise ValidationError(str(exc), code="invalid") from None


class InstantFilter(django_filters.IsoDateTimeFilter):
    field_class = InstantField
