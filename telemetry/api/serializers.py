from __future__ import annotations

from rest_framework import serializers

from controlplane.api.serializers import ModelSerializer
from telemetry.latency import SOURCES, STEPS_S
from telemetry.models import UsageHour
from telemetry.selectors import USAGE_GROUPS
from web.errors import ErrorSerializer


class IngestBatchSerializer(serializers.Serializer):
    """What an adapter sends (documentation only: the body is read by ``telemetry/ingest.py``)."""

    task_id = serializers.IntegerField(help_text="The task of the ingest token.")
    records = serializers.ListField(
        child=serializers.DictField(), max_length=1000, help_text="Metric or reflow records (serving/adapter/)."
    )


class EngineLoadSnapshotSerializer(serializers.Serializer):
    """One instance's engine load, as its adapter read it from the engine's ``/metrics`` (documentation only)."""

    instance = serializers.CharField(max_length=200, help_text="The adapter that reports (host name, process id).")
    observed_at = serializers.DateTimeField(help_text="When the engine's /metrics was read.")
    requests_running = serializers.IntegerField(
        min_value=0, allow_null=True, required=False, help_text="vllm:num_requests_running, summed over label sets."
    )
    requests_waiting = serializers.IntegerField(
        min_value=0, allow_null=True, required=False, help_text="vllm:num_requests_waiting, summed over label sets."
    )
    kv_cache_usage = serializers.FloatField(
        min_value=0, max_value=1, allow_null=True, required=False,
        help_text="vllm:kv_cache_usage_perc (a fraction), the largest over label sets.",
    )  # fmt: skip


class EngineLoadBatchSerializer(serializers.Serializer):
    """What an adapter sends every few seconds (documentation only: the body is read by ``telemetry/ingest.py``)."""

    task_id = serializers.IntegerField(help_text="The task of the ingest token.")
    records = EngineLoadSnapshotSerializer(many=True, help_text="Snapshots; the newest per instance is kept.")


class IngestResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    stored = serializers.IntegerField(help_text="New records; a record already stored (by its id) is not stored again.")
    duplicates = serializers.IntegerField()
    rejected = serializers.ListField(
        child=serializers.DictField(), help_text="Malformed records: index, id, errors by field (answered with 422)."
    )


class IngestRejectedSerializer(ErrorSerializer, IngestResultSerializer):
    """A 422: the error (``ingest_records_rejected``) and the counts; the valid records were stored."""

    class Meta:
        ref_name = "IngestRejected"


class WindowQuerySerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="ISO 8601; default: an hour before until.")
    until = serializers.DateTimeField(required=False, help_text="ISO 8601; default: now.")


class LatencyQuerySerializer(WindowQuerySerializer):
    step = serializers.ChoiceField(
        choices=STEPS_S, required=False, help_text="Seconds per point; default: the smallest with at most 60 points."
    )
    source = serializers.ChoiceField(choices=SOURCES, default="auto")


class PercentilesSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p90 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


class LatencyPointSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    good = serializers.IntegerField(help_text="Requests that met the task's TTFT and TPOT targets.")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    requests_per_s = serializers.FloatField(allow_null=True)
    output_tokens_per_s = serializers.FloatField(allow_null=True)
    goodput_per_s = serializers.FloatField(allow_null=True)
    good_ratio = serializers.FloatField(allow_null=True)
    ttft_ms = PercentilesSerializer()
    tpot_ms = PercentilesSerializer()
    itl_ms = PercentilesSerializer()
    e2e_ms = PercentilesSerializer()


class LatencyReportSerializer(serializers.Serializer):
    task = serializers.IntegerField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    step_s = serializers.IntegerField()
    source = serializers.ChoiceField(choices=["raw", "rollups"])
    relative_error = serializers.FloatField(help_text="0 for exact percentiles; 0.01 for roll-ups.")
    targets = serializers.DictField(child=serializers.IntegerField())
    summary = LatencyPointSerializer()
    series = LatencyPointSerializer(many=True)


class UsageQuerySerializer(WindowQuerySerializer):
    tenant = serializers.CharField(required=False, help_text="A tenant's slug; default: every tenant you see.")
    task = serializers.IntegerField(required=False)
    api_key = serializers.IntegerField(required=False)
    group_by = serializers.CharField(
        required=False, default="", help_text=f"Comma-separated, any of: {', '.join(USAGE_GROUPS)}."
    )

    def validate_group_by(self, value: str) -> list[str]:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in USAGE_GROUPS]
        if unknown:
            raise serializers.ValidationError(f"Unknown grouping {', '.join(unknown)}; use {', '.join(USAGE_GROUPS)}.")
        if "hour" in names and "day" in names:
            raise serializers.ValidationError("Group by hour or by day, not both.")
        return list(dict.fromkeys(names))


class UsageTotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class UsageRowSerializer(UsageTotalsSerializer):
    tenant = serializers.CharField()
    task = serializers.IntegerField(required=False)
    task_name = serializers.CharField(required=False, allow_null=True, help_text="Null once the task is deleted.")
    api_key = serializers.IntegerField(required=False)
    api_key_name = serializers.CharField(required=False, allow_null=True)
    hour = serializers.DateTimeField(required=False)
    day = serializers.DateTimeField(required=False)


class UsageSummarySerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    group_by = serializers.ListField(child=serializers.CharField())
    totals = UsageTotalsSerializer()
    truncated = serializers.BooleanField(help_text="More than 10,000 rows: narrow the window or group less finely.")
    results = UsageRowSerializer(many=True)


class TokensPerMinuteSerializer(serializers.Serializer):
    tenant = serializers.CharField()
    tokens_per_minute_quota = serializers.IntegerField()
    last_minute = serializers.IntegerField(help_text="Input + output tokens of requests in the last 60 seconds.")
    peak = serializers.IntegerField(help_text="The busiest minute of the last hour.")
    series = serializers.ListField(child=serializers.DictField())


class AccessLogSerializer(ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    api_key_name = serializers.SerializerMethodField()

    class Meta:
        model = UsageHour
        fields = [
            "id", "tenant", "api_key_id", "api_key_name", "task_id", "hour", "requests", "errors", "input_tokens",
            "output_tokens", "first_request_at", "last_request_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_api_key_name(self, row: UsageHour) -> str | None:
        return self.context.get("key_names", {}).get(row.api_key_id)
