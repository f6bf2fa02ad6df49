"""The adapter's configuration file: one JSON object per inference task, rendered by the control plane.

Format (keys not listed are rejected, so a typo fails loudly at startup instead of silently doing nothing)::

    {
      "task_id": 7,                        # int, required
      "tenant_id": 3,                      # int, required
      "served_model_name": "chat",         # str, required: the `model` callers send (or omit)
      "upstream_model": "chat",            # str, optional: the name the engine serves (default: served_model_name)
      "system_prompt": "You are ...",      # str, optional: "" = none
      "sampling_policy": "defaults",       # "defaults" (caller's explicit value wins) | "locked" (task's value wins)
      "sampling": {                        # optional; any subset
        "temperature": 0.7,                # 0..2
        "top_p": 0.9,                      # (0, 1]
        "repetition_penalty": 1.0          # 1..2 (vLLM's name)
      },
      "api_keys": [{"id": 12, "digest": "<sha256 hex of the full key plaintext aicp_sk_<id>_<secret>>"}],
      "tokens_per_minute": 100000,         # int > 0, or null/0 = unlimited; enforced per adapter replica
      "max_request_bytes": 16777216,       # int >= 1024, optional: the largest request body (413 above it); the
                                           # default, 16 MiB, fits a 128k-token prompt with room for JSON escapes
      "runtime_image_version": "1.2.0",    # str, optional: copied into reflow records
      "slo": {"ttft_ms": 2000, "tpot_ms": 100},  # optional, informational here (goodput is computed upstream)
      "reflow": {                          # optional
        "enabled": false,
        "sample_rate": 1.0,                # 0..1: fraction of requests captured
        "redact": true,                    # replace e-mails, phone and ID numbers with [EMAIL] [PHONE] [ID]
        "spool_dir": "/var/lib/aicp/reflow", # reflow spool in <spool_dir>/reflow, metric spool in <spool_dir>/metrics,
                                           # captures waiting to be built in <spool_dir>/capture (see capture.py)
        "max_pending_bytes": 33554432,     # captures held in memory before they are on disk (dropped above it)
        "max_backlog_bytes": 1073741824    # captures on disk not built into records yet (dropped above it)
      },
      "ingest": {                          # optional, but required when reflow is enabled
        "url": "http://control-plane/api/v1/ingest/",   # batches go to <url>reflow/ and <url>metrics/
        "token": "...",                    # sent as Authorization: Bearer <token>
        "batch_size": 200,                 # records per POST: 1..1000 (ingest refuses larger batches)
        "interval_s": 2.0,                 # how often the shipper looks for new records
        "max_backoff_s": 30.0,             # cap of the exponential retry delay while ingest is down
        "engine_load_interval_s": 5.0      # how often the engine's /metrics load is read and sent; 0 = never
      }
    }

Without ``ingest`` nothing is spooled or shipped and the engine's load is not reported (Prometheus metrics on
/metrics still work). The engine-load report is described in ``engine_load.py``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.request_size import DEFAULT_MAX_REQUEST_BYTES

SAMPLING_RANGES = {
    "temperature": (0.0, 2.0, True),  # (low, high, low inclusive)
    "top_p": (0.0, 1.0, False),
    "repetition_penalty": (1.0, 2.0, True),
}
MIN_REQUEST_BYTES = 1024
MAX_INGEST_BATCH = 1000  # records per POST the control plane's ingest endpoint accepts (it answers 413 above)
_INGEST_KEYS = {"url", "token", "batch_size", "interval_s", "max_backoff_s", "engine_load_interval_s"}
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_TOP_KEYS = {
    "task_id",
    "tenant_id",
    "served_model_name",
    "upstream_model",
    "system_prompt",
    "sampling_policy",
    "sampling",
    "api_keys",
    "tokens_per_minute",
    "max_request_bytes",
    "runtime_image_version",
    "slo",
    "reflow",
    "ingest",
}


class ConfigError(ValueError):
    """Every problem of a config file at once, each prefixed by the path of the offending key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid adapter config:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class ReflowConfig:
    enabled: bool = False
    sample_rate: float = 1.0
    redact: bool = True
    spool_dir: str = "/var/lib/aicp/reflow"
    max_pending_bytes: int = 32 << 20
    max_backlog_bytes: int = 1 << 30


@dataclass(frozen=True)
class IngestConfig:
    url: str
    token: str
    batch_size: int = 200
    interval_s: float = 2.0
    max_backoff_s: float = 30.0
    engine_load_interval_s: float = 5.0


@dataclass(frozen=True)
class AdapterConfig:
    task_id: int
    tenant_id: int
    served_model_name: str
    upstream_model: str
    system_prompt: str = ""
    sampling_policy: str = "defaults"
    sampling: dict[str, float] = field(default_factory=dict)
    api_keys: dict[str, int] = field(default_factory=dict)  # digest -> key id
    tokens_per_minute: int | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    runtime_image_version: str = ""
    slo: dict[str, float] = field(default_factory=dict)
    reflow: ReflowConfig = field(default_factory=ReflowConfig)
    ingest: IngestConfig | None = None

    @property
    def locked(self) -> bool:
        return self.sampling_policy == "locked"


_REFLOW_BOUNDS = {key: getattr(ReflowConfig, key) for key in ("max_pending_bytes", "max_backlog_bytes")}


def load_config(path: str | Path) -> AdapterConfig:
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror or exc}"]) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{path} is not valid JSON: {exc}"]) from exc
    return parse_config(raw)


def parse_config(raw: Any) -> AdapterConfig:
    """Validate ``raw`` and build the config; raises ConfigError naming every bad key."""
    if not isinstance(raw, dict):
        raise ConfigError(["the config must be a JSON object"])
    p: list[str] = []
    for key in sorted(set(raw) - _TOP_KEYS):
        p.append(f"{key}: unknown key")

    task_id = _int(raw, "task_id", p, required=True)
    tenant_id = _int(raw, "tenant_id", p, required=True)
    served = _str(raw, "served_model_name", p, required=True)
    upstream = _str(raw, "upstream_model", p) or served
    system_prompt = _str(raw, "system_prompt", p)
    policy = raw.get("sampling_policy", "defaults")
    if policy not in ("defaults", "locked"):
        p.append(f'sampling_policy: must be "defaults" or "locked", got {policy!r}')

    sampling: dict[str, float] = {}
    raw_sampling = raw.get("sampling") or {}
    if not isinstance(raw_sampling, dict):
        p.append("sampling: must be an object")
        raw_sampling = {}
    for key, value in raw_sampling.items():
        if key not in SAMPLING_RANGES:
            p.append(f"sampling.{key}: unknown parameter (allowed: {', '.join(SAMPLING_RANGES)})")
        elif value is None:
            continue
        elif not _is_number(value):
            p.append(f"sampling.{key}: must be a number, got {value!r}")
        else:
            low, high, low_inclusive = SAMPLING_RANGES[key]
            if not ((low <= value if low_inclusive else low < value) and value <= high):
                bracket = "[" if low_inclusive else "("
                p.append(f"sampling.{key}: {value} is outside {bracket}{low}, {high}]")
            else:
                sampling[key] = value

    api_keys = _api_keys(raw.get("api_keys"), p)
    tpm = raw.get("tokens_per_minute")
    if tpm is not None and (not isinstance(tpm, int) or isinstance(tpm, bool) or tpm < 0):
        p.append(f"tokens_per_minute: must be a non-negative integer or null, got {tpm!r}")
        tpm = None
    max_request_bytes = raw.get("max_request_bytes", DEFAULT_MAX_REQUEST_BYTES)
    if not _is_int(max_request_bytes) or max_request_bytes < MIN_REQUEST_BYTES:
        p.append(f"max_request_bytes: must be an integer of at least {MIN_REQUEST_BYTES}, got {max_request_bytes!r}")
        max_request_bytes = DEFAULT_MAX_REQUEST_BYTES
    slo = raw.get("slo") or {}
    if not isinstance(slo, dict) or not all(_is_number(v) and v > 0 for v in slo.values()):
        p.append("slo: must be an object of positive numbers, e.g. {'ttft_ms': 2000, 'tpot_ms': 100}")
        slo = {}

    reflow = _reflow(raw.get("reflow") or {}, p)
    ingest = _ingest(raw.get("ingest"), p)
    if reflow.enabled and ingest is None:
        p.append("reflow.enabled: needs an 'ingest' section (where captured records are shipped)")
    if p:
        raise ConfigError(p)
    return AdapterConfig(
        task_id=task_id,
        tenant_id=tenant_id,
        served_model_name=served,
        upstream_model=upstream,
        system_prompt=system_prompt,
        sampling_policy=policy,
        sampling=sampling,
        api_keys=api_keys,
        tokens_per_minute=tpm or None,
        max_request_bytes=max_request_bytes,
        runtime_image_version=_str(raw, "runtime_image_version", []),
        slo=dict(slo),
        reflow=reflow,
        ingest=ingest,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(raw: dict, key: str, p: list[str], required: bool = False) -> int:
    value = raw.get(key)
    if value is None and not required:
        return 0
    if not isinstance(value, int) or isinstance(value, bool):
        p.append(f"{key}: {'required, ' if value is None else ''}must be an integer, got {value!r}")
        return 0
    return value


def _str(raw: dict, key: str, p: list[str], required: bool = False) -> str:
    value = raw.get(key)
    if value is None or (value == "" and not required):
        if required:
            p.append(f"{key}: required (a non-empty string)")
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        p.append(f"{key}: must be a non-empty string, got {value!r}")
        return ""
    return value


def _api_keys(raw: Any, p: list[str]) -> dict[str, int]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        p.append("api_keys: must be a list of {'id': int, 'digest': sha256 hex}")
        return {}
    keys: dict[str, int] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - {"id", "digest"}:
            p.append(f"api_keys[{i}]: must be an object with exactly 'id' and 'digest'")
            continue
        key_id, digest = item.get("id"), item.get("digest")
        if not isinstance(key_id, int) or isinstance(key_id, bool):
            p.append(f"api_keys[{i}].id: must be an integer, got {key_id!r}")
        elif not isinstance(digest, str) or not _DIGEST.match(digest):
            p.append(f"api_keys[{i}].digest: must be 64 lowercase hex characters (sha256 of the key)")
        else:
            keys[digest] = key_id
    return keys


def _reflow(raw: Any, p: list[str]) -> ReflowConfig:
    if not isinstance(raw, dict):
        p.append("reflow: must be an object")
        return ReflowConfig()
    for key in sorted(set(raw) - {"enabled", "sample_rate", "redact", "spool_dir", *_REFLOW_BOUNDS}):
        p.append(f"reflow.{key}: unknown key")
    bounds = {}
    for key, default in _REFLOW_BOUNDS.items():
        bounds[key] = raw.get(key, default)
        if not _is_int(bounds[key]) or bounds[key] < MIN_REQUEST_BYTES:
            p.append(f"reflow.{key}: must be an integer of at least {MIN_REQUEST_BYTES} (bytes), got {bounds[key]!r}")
            bounds[key] = default
    enabled, redact = raw.get("enabled", False), raw.get("redact", True)
    rate = raw.get("sample_rate", 1.0)
    spool_dir = raw.get("spool_dir", ReflowConfig.spool_dir)
    for key, value in (("enabled", enabled), ("redact", redact)):
        if not isinstance(value, bool):
            p.append(f"reflow.{key}: must be true or false, got {value!r}")
    if not _is_number(rate) or not 0 <= rate <= 1:
        p.append(f"reflow.sample_rate: must be a number in [0, 1], got {rate!r}")
    if not isinstance(spool_dir, str) or not spool_dir:
        p.append("reflow.spool_dir: must be a non-empty path")
    return ReflowConfig(
        enabled=enabled is True,
        sample_rate=rate if _is_number(rate) else 1.0,
        redact=redact is not False,
        spool_dir=spool_dir if isinstance(spool_dir, str) else "",
        **bounds,
    )


def _ingest(raw: Any, p: list[str]) -> IngestConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        p.append("ingest: must be an object or null")
        return None
    for key in sorted(set(raw) - _INGEST_KEYS):
        p.append(f"ingest.{key}: unknown key")
    url, token = raw.get("url"), raw.get("token")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        p.append(f"ingest.url: must be an http(s) URL, got {url!r}")
        url = ""
    if not isinstance(token, str) or not token:
        p.append("ingest.token: required (a non-empty string)")
    batch = raw.get("batch_size", 200)
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= MAX_INGEST_BATCH:
        p.append(f"ingest.batch_size: must be an integer in [1, {MAX_INGEST_BATCH}], got {batch!r}")
        batch = 200
    numbers = {}
    for key, default in (("interval_s", 2.0), ("max_backoff_s", 30.0)):
        numbers[key] = raw.get(key, default)
        if not _is_number(numbers[key]) or numbers[key] <= 0:
            p.append(f"ingest.{key}: must be a positive number, got {numbers[key]!r}")
            numbers[key] = default
    load_interval = raw.get("engine_load_interval_s", 5.0)
    if not _is_number(load_interval) or load_interval < 0:
        p.append(f"ingest.engine_load_interval_s: must be a non-negative number (0 = off), got {load_interval!r}")
        load_interval = 5.0
    numbers["engine_load_interval_s"] = load_interval
    if url and not url.endswith("/"):
        url += "/"
    return IngestConfig(url=url, token=token if isinstance(token, str) else "", batch_size=batch, **numbers)
