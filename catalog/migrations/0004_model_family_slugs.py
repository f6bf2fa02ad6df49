"""Family slugs the API can route and its schema accepts: letters, digits, ``-`` and ``_``.

Migration 0003 seeded Yi-1.5-34B as ``yi-1.5-34b``. Its dot matched neither the slug pattern the schema
publishes nor the API's URL pattern, so the family could not be read, changed or deleted through the API. Any
stored slug with other characters gets them replaced by ``-`` (``yi-1-5-34b``); a number is added if that slug
is taken. Models keep their family: they refer to it by id.
"""

import re

from django.db import migrations

SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


def routable_slug(slug: str, taken: set[str]) -> str:
    base = re.sub(r"[^-a-zA-Z0-9_]+", "-", slug).strip("-") or "family"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def forwards(apps, schema_editor):
    ModelFamily = apps.get_model("catalog", "ModelFamily")
    taken = set(ModelFamily.objects.values_list("slug", flat=True))
    for family in ModelFamily.objects.order_by("pk"):
        if not SLUG.match(family.slug):
            family.slug = routable_slug(family.slug, taken)
            taken.add(family.slug)
            family.save(update_fields=["slug"])


class Migration(migrations.Migration):
    dependencies = [("catalog", "0003_seed_model_families")]
    # Backwards there is nothing to restore: the old slugs were unusable through the API.
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
