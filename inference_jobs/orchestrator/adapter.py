"""The adapter's config file as every backend renders it (format: ``serving/adapter/config.py``).

One function for all backends, so a task's adapter behaves the same in a pod and as a local process; only
where its spool lives differs (a pod volume, or a folder in the task's local run folder).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from inference_jobs.choices import SamplingPolicy

if TYPE_CHECKING:
    from inference_jobs.orchestrator.spec import TaskSpec


def adapter_config(spec: TaskSpec, spool_dir: str) -> dict:
    """The adapter's config for ``spec``; metric and reflow records are spooled under ``spool_dir``."""
    config = {
        "task_id": spec.id,
        "tenant_id": spec.tenant.id,
        "served_model_name": spec.served_model_name,
        "upstream_model": spec.served_model_name,
        "system_prompt": spec.system_prompt,
        "sampling_policy": "locked" if spec.sampling_policy == SamplingPolicy.LOCKED else "defaults",
        "sampling": {
            "temperature": spec.temperature,
            "top_p": spec.top_p,
            "repetition_penalty": spec.repetition_penalty,
        },
        "api_keys": [{"id": key_id, "digest": digest} for key_id, digest in spec.api_keys],
        "tokens_per_minute": spec.tenant.max_tokens_per_minute or None,
        "max_request_bytes": settings.AICP_MAX_REQUEST_BYTES,
        "runtime_image_version": spec.image_version,
        "slo": {"ttft_ms": spec.ttft_slo_ms, "tpot_ms": spec.tpot_slo_ms},
        "reflow": {"enabled": spec.reflow_enabled, "sample_rate": 1.0, "redact": True, "spool_dir": spool_dir},
    }
    if spec.ingest_url:
        config["ingest"] = {"url": spec.ingest_url, "token": spec.ingest_token}
    return config
