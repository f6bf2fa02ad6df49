"""Shapes of the task API. Serializers check the shape of input only; every rule is in the services."""

from __future__ import annotations

from rest_framework import serializers

from catalog.api.serializers import SizingAdviceSerializer
from catalog.models import Model
from compute_pools.models import ComputePool
from controlplane.api.serializers import (
    ModelSerializer,
    RestrictedPrimaryKeyRelatedField,
    RestrictedSlugRelatedField,
    TenantDefaultMixin,
    tenant_field,
)
from gateways.models import Gateway
from inference_jobs.constants import MAX_COMPUTE_UNITS_PER_INSTANCE, MAX_INSTANCES
from inference_jobs.models import InferenceTask, TaskEvent
from inference_jobs.services import MUTABLE_FIELDS


class EngineLoadSerializer(serializers.Serializer):
    """``InferenceTask.engine_load``: what the task's engines last reported (``docs/telemetry.md``)."""

    requests_running = serializers.IntegerField(
        allow_null=True, help_text="Requests in the engines' running batches, summed over the instances."
    )
    requests_waiting = serializers.IntegerField(
        allow_null=True, help_text="Requests queued for a slot, summed over the instances."
    )
    kv_cache_usage = serializers.FloatField(
        allow_null=True, help_text="The fullest KV cache among the instances, as a fraction (0.13 = 13 %)."
    )
    observed_at = serializers.DateTimeField(help_text="When the newest of these snapshots was taken.")
    instances = serializers.IntegerField(help_text="Instances whose snapshot counts (reported within 60 s of it).")


class InferenceTaskSerializer(ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    model_name = serializers.CharField(source="model.name", read_only=True)
    compute_pool = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    gateway = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    port = serializers.SerializerMethodField()
    access_url = serializers.SerializerMethodField()
    compute_units = serializers.IntegerField(read_only=True)
    served_model_name = serializers.CharField(source="effective_served_model_name", read_only=True)
    runtime_image = serializers.CharField(source="runtime_image_version.image.slug", read_only=True)
    runtime_image_version = serializers.CharField(source="runtime_image_version.version", read_only=True)
    update_available = serializers.SerializerMethodField()
    engine_load = EngineLoadSerializer(
        read_only=True, allow_null=True, help_text="The engines' last reported load; null until one reports."
    )

    class Meta:
        model = InferenceTask
        fields = [
            "id", "tenant", "name", "description", "model", "model_name", "mode", "compute_pool", "gateway", "port",
            "access_url", "compute_units_per_instance", "instances", "compute_units", "async_batching",
            "reflow_enabled", "temperature", "top_p", "repetition_penalty", "sampling_policy", "system_prompt",
            "served_model_name", "ttft_slo_ms", "tpot_slo_ms", "runtime_image", "runtime_image_version",
            "update_available", "desired_state", "status", "status_message", "ready_instances", "generation",
            "observed_generation", "engine_load", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def _port(self, task: InferenceTask):
        try:
            return task.gateway_port
        except InferenceTask.gateway_port.RelatedObjectDoesNotExist:
            return None

    def get_port(self, task: InferenceTask) -> int | None:
        port = self._port(task)
        return port.port if port else None

    def get_access_url(self, task: InferenceTask) -> str | None:
        port = self._port(task)
        return task.gateway.access_url(port.port) if port else None

    def get_update_available(self, task: InferenceTask) -> bool:
        """A newer version of the task's runtime image is published; ``update-image`` would move to it."""
        annotated = getattr(task, "update_available", None)
        if annotated is not None:
            return annotated
        pinned = task.runtime_image_version
        return pinned.image.versions.filter(published_at__gt=pinned.published_at).exists()


class IngestTokenSerializer(serializers.Serializer):
    ingest_token = serializers.CharField(
        read_only=True,
        help_text="The token the task's adapter sends to the ingest API. Shown in this response only; the "
        "platform hands it to the task's own adapter itself.",
    )


class InferenceTaskCreatedSerializer(InferenceTaskSerializer):
    ingest_token = IngestTokenSerializer().fields["ingest_token"]

    class Meta(InferenceTaskSerializer.Meta):
        fields = [*InferenceTaskSerializer.Meta.fields, "ingest_token"]
        read_only_fields = fields


class InferenceTaskCreateSerializer(TenantDefaultMixin, ModelSerializer):
    tenant = tenant_field(required=False)
    model = RestrictedPrimaryKeyRelatedField(queryset=Model.objects.all(), scope="view")
    compute_pool = RestrictedSlugRelatedField(slug_field="slug", queryset=ComputePool.objects.all(), scope="view")
    gateway = RestrictedSlugRelatedField(slug_field="slug", queryset=Gateway.objects.all(), scope="view")
    compute_units_per_instance = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_COMPUTE_UNITS_PER_INSTANCE,
        help_text="Cards per instance; empty or null: the sizing advisor's recommendation for the model on the pool.",
    )
    instances = serializers.IntegerField(required=False, default=1, min_value=1, max_value=MAX_INSTANCES)

    class Meta:
        model = InferenceTask
        fields = [
            "tenant", "name", "model", "mode", "compute_pool", "gateway", "compute_units_per_instance", "instances",
            *MUTABLE_FIELDS,
        ]  # fmt: skip
        # Uniqueness is a platform rule with its own code (task_name_taken), checked by the service.
        validators = []

    def validate(self, attrs):
        attrs = super().validate(attrs)
        model = attrs.get("model")
        if model is not None and model.tenant_id != attrs["tenant"].pk:
            raise serializers.ValidationError({"model": [f'Invalid pk "{model.pk}" - object does not exist.']})
        return attrs


class InferenceTaskUpdateSerializer(ModelSerializer):
    class Meta:
        model = InferenceTask
        fields = list(MUTABLE_FIELDS)


class InferenceTaskScaleSerializer(serializers.Serializer):
    instances = serializers.IntegerField(min_value=1, max_value=MAX_INSTANCES)
    compute_units_per_instance = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_COMPUTE_UNITS_PER_INSTANCE
    )


class VerdictSerializer(serializers.Serializer):
    rule = serializers.CharField(help_text="The code a create would refuse with.")
    accepted = serializers.BooleanField()
    message = serializers.CharField(allow_blank=True)
    field = serializers.CharField(allow_null=True)


class DryRunResultSerializer(serializers.Serializer):
    accepted = serializers.BooleanField()
    compute_units_per_instance = serializers.IntegerField()
    verdicts = VerdictSerializer(many=True)
    sizing = SizingAdviceSerializer()


class TaskEventSerializer(ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = TaskEvent
        fields = ["id", "created_at", "level", "reason", "message", "actor"]
        read_only_fields = fields
