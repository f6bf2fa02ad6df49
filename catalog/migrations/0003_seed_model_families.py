"""The model families SPEC lists as validated."""

from django.db import migrations

FAMILIES = [
    ("llama2-7b", "Llama2-7B", "LlamaForCausalLM", 6_738_415_616),
    ("llama2-13b", "Llama2-13B", "LlamaForCausalLM", 13_015_864_320),
    ("baichuan2-7b", "Baichuan2-7B", "BaichuanForCausalLM", 7_505_973_248),
    ("baichuan2-13b", "Baichuan2-13B", "BaichuanForCausalLM", 13_896_668_160),
    ("qwen2-72b", "Qwen2-72B", "Qwen2ForCausalLM", 72_706_203_648),
    ("yi-1.5-34b", "Yi-1.5-34B", "LlamaForCausalLM", 34_388_917_248),
]


def seed(apps, schema_editor):
    ModelFamily = apps.get_model("catalog", "ModelFamily")
    for slug, name, architecture, parameters in FAMILIES:
        ModelFamily.objects.update_or_create(
            slug=slug,
            defaults={"name": name, "architecture": architecture, "parameter_count": parameters, "validated": True},
        )


def unseed(apps, schema_editor):
    apps.get_model("catalog", "ModelFamily").objects.filter(slug__in=[f[0] for f in FAMILIES]).delete()


class Migration(migrations.Migration):
    dependencies = [("catalog", "0002_initial")]
    operations = [migrations.RunPython(seed, unseed)]
