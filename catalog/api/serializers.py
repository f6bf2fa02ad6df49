"""Shapes of the catalogue API. Serializers check the shape of input only; every rule is in the services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.models import Model, ModelFamily, RuntimeImage, RuntimeImageVersion
from compute_pools.models import ComputePool
from controlplane.api.serializers import ModelSerializer, RestrictedSlugRelatedField, TenantDefaultMixin, tenant_field

SHA256_HEX = r"^[0-9a-fA-F]{64}$"
# An OCI image tag.
IMAGE_TAG = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
IMAGE_DIGEST = r"^sha256:[0-9a-f]{64}$"


class ModelFamilySerializer(ModelSerializer):
    # Declared, so that a taken slug is the service's ``slug_taken`` rather than a generic uniqueness error.
    slug = serializers.SlugField(max_length=63, help_text="Fixed id, e.g. llama2-7b.")

    class Meta:
        model = ModelFamily
        fields = ["slug", "name", "architecture", "parameter_count", "validated"]


class ModelFamilyUpdateSerializer(ModelSerializer):
    class Meta:
        model = ModelFamily
        fields = ["name", "architecture", "parameter_count", "validated"]


def _family_field(**kwargs) -> RestrictedSlugRelatedField:
    return RestrictedSlugRelatedField(
        slug_field="slug", queryset=ModelFamily.objects.all(), scope="view", allow_null=True, **kwargs
    )


class CatalogModelSerializer(ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    family = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    family_name = serializers.CharField(source="family.name", read_only=True, allow_null=True, default=None)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    task_count = serializers.IntegerField(read_only=True, help_text="Inference tasks that use the model.")
    checksum_sha256 = serializers.CharField(
        read_only=True,
        help_text='SHA-256 over one line "<relative path>\\t<file sha256>\\n" per file, sorted by path.',
    )

    class Meta:
        model = Model
        fields = [
            "id", "tenant", "name", "description", "family", "family_name", "format", "architecture",
            "parameter_count", "dtype", "context_length", "size_bytes", "checksum_sha256", "encrypted", "compressed",
            "storage_path", "config", "status", "status_message", "task_count", "created_by", "created_at",
            "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class ModelUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    family = _family_field(required=False, help_text="Slug of a model family, or null.")


class ModelUploadSerializer(TenantDefaultMixin, serializers.Serializer):
    """A multipart upload: the model's files (``files``, optionally with ``paths``) or one ``archive``."""

    tenant = tenant_field(required=False)
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    family = _family_field(required=False, default=None, help_text="Slug of a model family; guessed when left out.")
    encrypted = serializers.BooleanField(default=False, help_text="The weights are encrypted.")
    compressed = serializers.BooleanField(
        default=False, help_text="Quantised or packed weights; set as well when config.json has quantization_config."
    )
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True),
        required=False,
        allow_empty=False,
        help_text="The model's files; each part's file name is its path in the model folder.",
    )
    paths = serializers.ListField(
        child=serializers.CharField(max_length=1000),
        required=False,
        allow_empty=False,
        help_text="Relative paths of the files, in the same order, for nested folders (tokenizer/vocab.json).",
    )
    archive = serializers.FileField(required=False, help_text="One .tar, .tar.gz/.tgz or .zip of the model folder.")
    sha256 = serializers.RegexField(SHA256_HEX, required=False, help_text="SHA-256 of the archive, hex.")
    checksums = serializers.JSONField(
        required=False, help_text='SHA-256 of files, as a JSON object {"<relative path>": "<hex digest>"}.'
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        files, archive = attrs.get("files"), attrs.get("archive")
        if files and archive:
            raise serializers.ValidationError({"archive": ["Send either files or an archive, not both."]})
        if not files and not archive:
            raise serializers.ValidationError({"files": ["Send the model's files, or one archive of them."]})
        if "paths" in attrs and len(attrs["paths"]) != len(files or []):
            raise serializers.ValidationError({"paths": ["Give one path per file, in the order of the files."]})
        if "sha256" in attrs and not archive:
            raise serializers.ValidationError({"sha256": ["sha256 checks an archive; for files send checksums."]})
        checksums = attrs.get("checksums")
        if checksums is not None and not (
            isinstance(checksums, dict) and all(isinstance(value, str) for value in checksums.values())
        ):
            raise serializers.ValidationError({"checksums": ['Send a JSON object {"<path>": "<sha256>"}.']})
        return attrs


class ModelSizingQuerySerializer(serializers.Serializer):
    compute_pool = RestrictedSlugRelatedField(
        slug_field="slug",
        queryset=ComputePool.objects.all(),
        scope="view",
        help_text="Slug of a compute pool you may deploy on; its card memory decides the advice.",
    )
    context_length = serializers.IntegerField(
        required=False, min_value=1, max_value=10_000_000, help_text="Tokens; the model's own context by default."
    )
    concurrent_sequences = serializers.IntegerField(
        required=False, default=1, min_value=1, max_value=4096, help_text="Sequences whose KV cache is held at once."
    )


class RuntimeImageVersionSerializer(ModelSerializer):
    image = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    reference = serializers.CharField(read_only=True, help_text="What a pod's image field gets.")

    class Meta:
        model = RuntimeImageVersion
        fields = ["id", "image", "version", "digest", "reference", "release_notes", "published_at"]
        read_only_fields = fields


class RuntimeImageVersionPublishSerializer(serializers.Serializer):
    version = serializers.RegexField(IMAGE_TAG, max_length=128, help_text="The image tag, e.g. 0.6.3.")
    digest = serializers.RegexField(
        IMAGE_DIGEST, required=False, allow_blank=True, default="", help_text="sha256:<hex> pins the exact image."
    )
    release_notes = serializers.CharField(required=False, allow_blank=True, default="")


class RuntimeImageSerializer(ModelSerializer):
    slug = serializers.SlugField(max_length=63, help_text="Fixed id, e.g. vllm-nvidia.")
    latest_version = serializers.SerializerMethodField(help_text="What new tasks deploy; null before a publish.")
    versions = RuntimeImageVersionSerializer(many=True, read_only=True, help_text="Newest first.")

    class Meta:
        model = RuntimeImage
        fields = ["slug", "name", "description", "mode", "vendor", "repository", "latest_version", "versions"]

    @extend_schema_field(RuntimeImageVersionSerializer(allow_null=True))
    def get_latest_version(self, image: RuntimeImage):
        versions = image.versions.all()  # prefetched newest first
        return RuntimeImageVersionSerializer(versions[0]).data if versions else None


class RuntimeImageUpdateSerializer(ModelSerializer):
    class Meta:
        model = RuntimeImage
        fields = ["name", "description", "mode", "vendor", "repository"]


class SizingAdviceSerializer(serializers.Serializer):
    parameter_count = serializers.IntegerField(allow_null=True)
    dtype = serializers.CharField()
    context_length = serializers.IntegerField()
    concurrent_sequences = serializers.IntegerField()
    weights_bytes = serializers.IntegerField()
    kv_cache_bytes = serializers.IntegerField()
    runtime_reserve_bytes = serializers.IntegerField()
    total_bytes = serializers.IntegerField()
    memory_per_card_gib = serializers.IntegerField()
    cards_by_memory = serializers.IntegerField()
    table_minimum = serializers.IntegerField()
    table_maximum = serializers.IntegerField()
    recommended = serializers.IntegerField()
    notes = serializers.ListField(child=serializers.CharField())
