"""CPU pools run high-performance mode too: vLLM's CPU runtime serves it where it is installed (the local
orchestrator checks that at admission; a cluster needs a high-performance runtime image for CPU pools)."""

from django.db import migrations

# What this migration changes in 0003's seeded table (tests/factories.py applies it when it re-seeds a row).
CHANGES = {"cpu": {"supports_high_performance_mode": True}}


def allow(apps, schema_editor):
    AcceleratorType = apps.get_model("compute_pools", "AcceleratorType")
    for slug, values in CHANGES.items():
        AcceleratorType.objects.filter(slug=slug).update(**values)


def disallow(apps, schema_editor):
    AcceleratorType = apps.get_model("compute_pools", "AcceleratorType")
    AcceleratorType.objects.filter(slug="cpu").update(supports_high_performance_mode=False)


class Migration(migrations.Migration):
    dependencies = [("compute_pools", "0004_pool_node_inventory")]

    operations = [migrations.RunPython(allow, disallow)]
