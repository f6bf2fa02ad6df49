from __future__ import annotations

from django.conf import settings
from django.db import models

from catalog.choices import ModelFormat, ModelStatus
from compute_pools.choices import Mode, Vendor
from tenancy.querysets import PlatformCatalogQuerySet, RestrictedQuerySet


class ModelFamily(models.Model):
    """A family of models the platform has validated (seeded with SPEC's six; admins may add more)."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    architecture = models.CharField(
        max_length=100, help_text="config.json 'architectures' entry, e.g. LlamaForCausalLM"
    )
    parameter_count = models.BigIntegerField(help_text="Nominal parameter count, e.g. 7000000000.")
    validated = models.BooleanField(default=True)

    objects = PlatformCatalogQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "model families"

    def __str__(self) -> str:
        return self.name


class Model(models.Model):
    """An uploaded model in Hugging Face layout, owned by a tenant."""

    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.PROTECT, related_name="models")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    family = models.ForeignKey(ModelFamily, null=True, blank=True, on_delete=models.SET_NULL, related_name="models")
    format = models.CharField(max_length=16, choices=ModelFormat.choices, default=ModelFormat.SAFETENSORS)
    architecture = models.CharField(max_length=100, blank=True)
    parameter_count = models.BigIntegerField(null=True, blank=True)
    dtype = models.CharField(max_length=16, blank=True)
    context_length = models.PositiveIntegerField(null=True, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    checksum_sha256 = models.CharField(
        max_length=64, blank=True, help_text="Digest of the model folder: SHA-256 over each file's path and digest."
    )
    encrypted = models.BooleanField(default=False)
    compressed = models.BooleanField(default=False, help_text="Quantised or packed weights.")
    storage_path = models.CharField(max_length=500, blank=True, help_text="Folder relative to the storage root.")
    config = models.JSONField(default=dict, blank=True, help_text="The model's config.json, as inspected.")
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.UPLOADING)
    status_message = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"],
                name="model_unique_name_per_tenant",
                violation_error_message="The tenant already has a model with this name.",
            )
        ]

    def __str__(self) -> str:
        return self.name


class RuntimeImage(models.Model):
    """A container image that serves models in one mode for one vendor."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    mode = models.CharField(max_length=16, choices=Mode.choices)
    vendor = models.CharField(max_length=16, choices=Vendor.choices)
    repository = models.CharField(max_length=300, help_text="Image repository, e.g. registry.example.com/aicp/vllm")

    objects = PlatformCatalogQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class RuntimeImageVersion(models.Model):
    """A published version. The newest is what new tasks get; running tasks keep the one they pinned."""

    image = models.ForeignKey(RuntimeImage, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=128, help_text="Image tag.")
    digest = models.CharField(max_length=100, blank=True, help_text="Optional sha256:... to pin the exact image.")
    release_notes = models.TextField(blank=True)
    published_at = models.DateTimeField(auto_now_add=True)

    objects = PlatformCatalogQuerySet.as_manager()

    class Meta:
        ordering = ["image__slug", "-published_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "version"],
                name="runtime_image_version_unique",
                violation_error_message="This runtime image already has this version.",
            )
        ]
        indexes = [models.Index(fields=["image", "-published_at", "-id"], name="runtime_image_newest")]

    def __str__(self) -> str:
        return f"{self.image.slug}:{self.version}"

    @property
    def reference(self) -> str:
        """What a pod's ``image:`` field gets."""
        suffix = f"@{self.digest}" if self.digest else ""
        return f"{self.image.repository}:{self.version}{suffix}"
