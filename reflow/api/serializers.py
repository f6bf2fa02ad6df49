from __future__ import annotations

from rest_framework import serializers

from controlplane.api.serializers import ModelSerializer
from reflow.choices import ExportKind, ReviewAction
from reflow.constants import MAX_BULK_REVIEW
from reflow.models import ReflowRecord


class ReflowRecordSerializer(ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    reviewed_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = ReflowRecord
        fields = [
            "id", "tenant", "task_id", "task_name", "api_key_id", "endpoint", "messages", "parameters", "output",
            "finish_reason", "input_tokens", "output_tokens", "ttft_ms", "tpot_ms", "status",
            "runtime_image_version", "started_at", "finished_at", "received_at", "review_status", "edited_output",
            "reviewed_by", "reviewed_at",
        ]  # fmt: skip
        read_only_fields = fields


class ReviewSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=ReviewAction.choices)
    edited_output = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, help_text="The corrected answer (action: edit)."
    )


class BulkReviewSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.UUIDField(), max_length=MAX_BULK_REVIEW, allow_empty=False)
    action = serializers.ChoiceField(choices=[ReviewAction.APPROVE, ReviewAction.REJECT])


class BulkReviewResultSerializer(serializers.Serializer):
    reviewed = serializers.IntegerField()


class ExportQuerySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ExportKind.choices, default=ExportKind.CHAT)
