"""The accelerator types of SPEC's table. Resource names of vendor device plugins come from settings
(AICP_NVIDIA_RESOURCE_NAME, AICP_ILUVATAR_RESOURCE_NAME) and stay editable afterwards."""

from django.conf import settings
from django.db import migrations


def accelerator_types():
    return [
        {
            "slug": "nvidia-gpu",
            "name": "NVIDIA GPU",
            "vendor": "nvidia",
            "kubernetes_resource_name": settings.AICP_NVIDIA_RESOURCE_NAME,
            "supports_normal_mode": True,
            "supports_high_performance_mode": True,
            "memory_per_card_gib": 80,
        },
        {
            "slug": "iluvatar-mr-v100",
            "name": "Iluvatar CoreX MR-V100 (Zhikai)",
            "vendor": "iluvatar",
            "kubernetes_resource_name": settings.AICP_ILUVATAR_RESOURCE_NAME,
            "supports_normal_mode": True,
            "supports_high_performance_mode": True,
            "memory_per_card_gib": 32,
        },
        {
            "slug": "iluvatar-bi-v100",
            "name": "Iluvatar CoreX BI-V100 (Tiangai)",
            "vendor": "iluvatar",
            "kubernetes_resource_name": settings.AICP_ILUVATAR_RESOURCE_NAME,
            "supports_normal_mode": True,
            "supports_high_performance_mode": False,
            "memory_per_card_gib": 32,
        },
        {
            "slug": "cpu",
            "name": "CPU (development)",
            "vendor": "none",
            "kubernetes_resource_name": "cpu",
            "supports_normal_mode": True,
            "supports_high_performance_mode": False,
            "memory_per_card_gib": 4,
        },
    ]


def seed(apps, schema_editor):
    AcceleratorType = apps.get_model("compute_pools", "AcceleratorType")
    for values in accelerator_types():
        slug = values.pop("slug")
        AcceleratorType.objects.update_or_create(slug=slug, defaults=values)


def unseed(apps, schema_editor):
    AcceleratorType = apps.get_model("compute_pools", "AcceleratorType")
    AcceleratorType.objects.filter(slug__in=[t["slug"] for t in accelerator_types()], pools__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("compute_pools", "0002_initial")]
    operations = [migrations.RunPython(seed, unseed)]
