"""Reads of the catalogue that are more than a filter."""

from __future__ import annotations

from django.db.models import Count, Prefetch, QuerySet

from catalog.constants import FAMILY_MATCH_TOLERANCE
from catalog.models import Model, ModelFamily, RuntimeImage, RuntimeImageVersion


def model_list_queryset() -> QuerySet[Model]:
    """Models with everything a list shows, in one query; ``task_count`` says whether deleting would be
    refused."""
    return Model.objects.select_related("tenant", "family", "created_by").annotate(task_count=Count("tasks"))


def runtime_image_list_queryset() -> QuerySet[RuntimeImage]:
    """Images with their versions newest first: two queries for any number of images."""
    newest_first = RuntimeImageVersion.objects.order_by("-published_at", "-id")
    return RuntimeImage.objects.prefetch_related(Prefetch("versions", queryset=newest_first))


def model_family_guess(*, architecture: str, parameter_count: int | None) -> ModelFamily | None:
    """The validated family of the same architecture whose nominal size is nearest, if it is within
    ``FAMILY_MATCH_TOLERANCE`` (a Llama 7B fine-tune is Llama2-7B; a 10B Llama is no family)."""
    if not architecture or not parameter_count:
        return None
    candidates = [
        family
        for family in ModelFamily.objects.filter(validated=True, architecture=architecture)
        if abs(parameter_count - family.parameter_count) <= FAMILY_MATCH_TOLERANCE * family.parameter_count
    ]
    return min(candidates, key=lambda family: abs(parameter_count - family.parameter_count), default=None)
