"""factory_boy factories for the whole domain. A ready model, a granted CPU pool and a gateway are one call
away: ``TaskFactory()`` builds everything a valid task needs, through the ORM (not the services)."""

from __future__ import annotations

import importlib

import factory
from django.utils import timezone

from catalog.choices import ModelStatus
from catalog.models import Model, ModelFamily, RuntimeImage, RuntimeImageVersion
from compute_pools.choices import Mode, Vendor
from compute_pools.models import AcceleratorType, ComputePool, PoolGrant
from gateways.models import Gateway, GatewayPort
from inference_jobs.ingest_tokens import ingest_token_issue
from inference_jobs.models import InferenceTask
from tenancy.choices import Role
from tenancy.models import Membership, Tenant, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class PlatformAdminFactory(UserFactory):
    is_superuser = True
    is_staff = True


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda t: t.slug.title())
    max_tasks = 100
    max_compute_units = 1000


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Role.MEMBER


_SEED = importlib.import_module("compute_pools.migrations.0003_seed_accelerator_types")
_SEED_CHANGES = importlib.import_module("compute_pools.migrations.0005_cpu_runs_high_performance_mode").CHANGES


def accelerator(slug: str) -> AcceleratorType:
    """One of the seeded accelerator types: nvidia-gpu, iluvatar-mr-v100, iluvatar-bi-v100, cpu. Re-created
    from the seed migration's table, with the later migrations' changes, when a transactional test has flushed the
    seeded rows."""
    values = next(dict(row) for row in _SEED.accelerator_types() if row["slug"] == slug)
    values.update(_SEED_CHANGES.get(slug, {}))
    return AcceleratorType.objects.get_or_create(slug=values.pop("slug"), defaults=values)[0]


class ComputePoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ComputePool

    slug = factory.Sequence(lambda n: f"pool-{n}")
    name = factory.LazyAttribute(lambda p: p.slug)
    accelerator_type = factory.LazyFunction(lambda: accelerator("nvidia-gpu"))
    capacity_compute_units = 10_000
    memory_per_card_gib = 80
    node_selector = factory.LazyAttribute(lambda p: {"aicp.io/pool": p.slug})


class PoolGrantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PoolGrant

    pool = factory.SubFactory(ComputePoolFactory)
    tenant = factory.SubFactory(TenantFactory)


class GatewayFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Gateway

    slug = factory.Sequence(lambda n: f"gateway-{n}")
    name = factory.LazyAttribute(lambda g: g.slug)
    address = "gw.example.com"
    port_range_start = 30000
    port_range_end = 30015


class ModelFamilyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelFamily

    slug = factory.Sequence(lambda n: f"family-{n}")
    name = factory.LazyAttribute(lambda f: f.slug)
    architecture = "LlamaForCausalLM"
    parameter_count = 7_000_000_000


LLAMA_7B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "torch_dtype": "float16",
}


class ModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Model

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"model-{n}")
    architecture = "LlamaForCausalLM"
    parameter_count = 6_738_415_616
    dtype = "float16"
    context_length = 4096
    size_bytes = 13_476_831_232
    config = factory.LazyFunction(lambda: dict(LLAMA_7B_CONFIG))
    status = ModelStatus.READY


class RuntimeImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RuntimeImage
        django_get_or_create = ("slug",)

    slug = factory.LazyAttribute(lambda i: f"{i.mode.replace('_', '-')}-{i.vendor}")
    name = factory.LazyAttribute(lambda i: i.slug)
    mode = Mode.NORMAL
    vendor = Vendor.NVIDIA
    repository = factory.LazyAttribute(lambda i: f"registry.example.com/aicp/{i.slug}")


class RuntimeImageVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RuntimeImageVersion

    image = factory.SubFactory(RuntimeImageFactory)
    version = factory.Sequence(lambda n: f"1.{n}.0")
    published_at = factory.LazyFunction(timezone.now)


def runtime_images_for_every_mode() -> None:
    """A published version for every mode/vendor pair, so that admission finds an image wherever it looks."""
    for mode in Mode.values:
        for vendor in Vendor.values:
            image = RuntimeImageFactory(mode=mode, vendor=vendor)
            if not image.versions.exists():
                RuntimeImageVersionFactory(image=image)


class TaskFactory(factory.django.DjangoModelFactory):
    """A task row with its port, built directly (admission is tested through the services)."""

    class Meta:
        model = InferenceTask
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"task-{n}")
    model = factory.SubFactory(ModelFactory, tenant=factory.SelfAttribute("..tenant"))
    mode = Mode.NORMAL
    compute_pool = factory.SubFactory(ComputePoolFactory)
    gateway = factory.SubFactory(GatewayFactory)
    compute_units_per_instance = 2
    instances = 1
    runtime_image_version = factory.SubFactory(
        RuntimeImageVersionFactory,
        image=factory.SubFactory(RuntimeImageFactory, mode=Mode.NORMAL, vendor=Vendor.NVIDIA),
    )

    @factory.post_generation
    def port(task, create, extracted, **kwargs):
        if not create:
            return
        taken = set(GatewayPort.objects.filter(gateway=task.gateway).values_list("port", flat=True))
        free = next(p for p in range(task.gateway.port_range_start, task.gateway.port_range_end + 1) if p not in taken)
        GatewayPort.objects.create(gateway=task.gateway, port=extracted or free, task=task)

    @factory.post_generation
    def ingest_token(task, create, extracted, **kwargs):
        """The plaintext stays on the object (``task.ingest_token``) for tests that play the adapter."""
        if create:
            task.ingest_token = ingest_token_issue(task)
            task.save(update_fields=["ingest_token_salt", "ingest_token_digest", "ingest_token_rotated_at"])
