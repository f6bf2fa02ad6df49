"""The ingest API's common half: who is sending, a bounded batch, and one verdict per record.

The sender is a task's adapter (``serving/adapter/spool.py``)::

    POST /api/v1/ingest/metrics/   (or /reflow/, /engine-load/)
    Authorization: Bearer aicp_it_<task id>_<secret>
    {"task_id": 7, "records": [{...}, ...]}

Answers:

* 200 ``{"received", "stored", "duplicates", "rejected": []}``: every record is stored; ``duplicates`` were
  already stored by an earlier delivery (delivery is at least once; records are deduplicated by ``id``);
* 422 ``ingest_records_rejected``: the same body plus the structured error, where ``rejected`` lists each
  malformed record (``index``, ``id``, ``errors`` by field). The valid records of the batch *are* stored, and
  re-sending the batch stores nothing twice;
* 400 ``invalid``: the body is not a JSON object with ``task_id`` and a ``records`` list;
* 401 ``ingest_token_invalid``: no token, a malformed, wrong or rotated one, or the task is gone;
* 403 ``ingest_task_mismatch``: the body names another task than the token's;
* 413 ``ingest_batch_too_large``: more than ``MAX_INGEST_RECORDS`` records, or a body over
  ``AICP_INGEST_MAX_BODY_BYTES``.

``ingest/engine-load/`` takes the same batches and gives the same answers; its records are snapshots, which carry
no ``id``: ``stored`` counts those that replaced an instance's older one, ``duplicates`` those that did not.

Records are checked here by plain functions rather than DRF serializers: a batch holds up to a thousand of
them, and a serializer per record would cost more than storing them.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api.exceptions import error_body
from controlplane.db import insert_new
from core.storable import find_unstorable, storable_instant, text_problem
from inference_jobs.ingest_tokens import ingest_token_matches, ingest_token_task_id
from inference_jobs.models import InferenceTask
from telemetry.constants import MAX_CLOCK_SKEW, MAX_INGEST_RECORDS

# ---- who is sending ---------------------------------------------------------------------------------------


class IngestTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer aicp_it_...``: the caller is the adapter of the token's task (``request.auth``)."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if len(header) != 2 or header[0].lower() != "bearer":
            raise exceptions.AuthenticationFailed("Send the task's ingest token as 'Authorization: Bearer <token>'.",
                                                  code="ingest_token_invalid")  # fmt: skip
        presented = header[1]
        task_id = ingest_token_task_id(presented)
        task = None
        if task_id is not None:
            task = InferenceTask.objects.filter(pk=task_id).first()
        if task is None or not ingest_token_matches(task, presented):
            raise exceptions.AuthenticationFailed("Invalid or rotated ingest token.", code="ingest_token_invalid")
        return None, task

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="ingest"'


class IsTaskAdapter(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, InferenceTask)


# ---- one verdict per record -------------------------------------------------------------------------------


class Invalid(ValueError):
    """A field of a record is malformed; the message says how."""


Check = Callable[[Any], Any]


def required(check: Check) -> Check:
    def run(value: Any) -> Any:
        if value is None:
            raise Invalid("is required")
        return check(value)

    return run


def optional(check: Check, default: Any = None) -> Check:
    def run(value: Any) -> Any:
        return default if value is None else check(value)

    return run


def record_id(value: Any) -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise Invalid("must be a UUID (32 hex digits)")


def integer(low: int, high: int) -> Check:
    def run(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise Invalid(f"must be an integer, got {_show(value)}")
        if not low <= value <= high:
            raise Invalid(f"must be between {low} and {high}, got {value}")
        return value

    return run


def milliseconds(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise Invalid(f"must be a number of milliseconds, got {_show(value)}")
    if value < 0:
        raise Invalid(f"must not be negative, got {value}")
    return float(value)


def fraction(value: Any) -> float:
    """A share between 0 and 1 (KV-cache use: 0.13 is 13 %)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise Invalid(f"must be a number between 0 and 1, got {_show(value)}")
    if not 0 <= value <= 1:
        raise Invalid(f"must be between 0 and 1, got {value}")
    return float(value)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false, got {_show(value)}")
    return value


def text(max_length: int, *, blank: bool = True) -> Check:
    def run(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid(f"must be a string, got {_show(value)}")
        if not blank and not value.strip():
            raise Invalid("must not be blank")
        if len(value) > max_length:
            raise Invalid(f"must be at most {max_length} characters, got {len(value)}")
        problem = text_problem(value)
        if problem:
            raise Invalid(problem)
        return value

    return run


def timestamp(value: Any) -> datetime:
    """An ISO 8601 time with its offset (the adapter writes UTC with ``Z``), not after now plus the skew."""
    if not isinstance(value, str):
        raise Invalid(f"must be an ISO 8601 time, got {_show(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"must be an ISO 8601 time, got {_show(value)}") from None
    if moment.tzinfo is None:
        raise Invalid("must carry a UTC offset (e.g. 2026-11-21T10:00:00Z)")
    try:
        moment = storable_instant(moment)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    if moment > timezone.now() + MAX_CLOCK_SKEW:
        raise Invalid(f"is more than {MAX_CLOCK_SKEW.seconds // 60} minutes in the future")
    return moment


def json_object(value: Any) -> dict:
    if not isinstance(value, dict):
        raise Invalid(f"must be a JSON object, got {_show(value)}")
    return storable_json(value)


def storable_json(value: Any) -> Any:
    """``value`` when a JSON column can hold all of it; else Invalid, naming where inside it the problem is."""
    found = find_unstorable(value)
    if found is not None:
        where, problem = found
        raise Invalid(f"{where}: {problem}" if where else problem)
    return value


def histogram(value: Any) -> dict[str, int]:
    """A sparse histogram ``{"<bin>": count}`` (telemetry/sketch.py), at most 4,000 bins."""
    if not isinstance(value, dict) or len(value) > 4000:
        raise Invalid("must be a JSON object of at most 4000 bins")
    for key, count in value.items():
        if not key.lstrip("-").isdigit() or not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise Invalid(f"must map integer bins to positive counts, got {key!r}: {_show(count)}")
    return value


def _show(value: Any) -> str:
    shown = json.dumps(value)  # values come from a parsed JSON body
    return shown if len(shown) <= 40 else shown[:37] + "..."


@dataclass
class Batch:
    """A batch's records, split into the clean ones and the verdicts on the others."""

    received: int = 0
    clean: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


def check_records(
    records: list[Any], fields: Mapping[str, Check], cross_check: Callable[[dict], dict[str, str]]
) -> Batch:
    """Each record through ``fields`` (unknown keys are ignored: newer adapters may send more), then
    ``cross_check`` (errors between fields or against the task). A record with any error is rejected whole."""
    batch = Batch(received=len(records))
    for index, raw in enumerate(records):
        if not isinstance(raw, dict):
            batch.rejected.append({"index": index, "id": None, "errors": {"record": "must be a JSON object"}})
            continue
        clean, errors = {}, {}
        for name, check in fields.items():
            try:
                clean[name] = check(raw.get(name))
            except Invalid as exc:
                errors[name] = str(exc)
        if not errors:
            errors = cross_check(clean)
        if errors:
            rid = raw.get("id")
            batch.rejected.append({"index": index, "id": rid if isinstance(rid, str) else None, "errors": errors})
        else:
            batch.clean.append(clean)
    return batch


def same_task(task: InferenceTask) -> Callable[[dict], dict[str, str]]:
    """Errors of a record that names another task or tenant than the token's."""

    def run(record: dict) -> dict[str, str]:
        errors = {}
        if record["task_id"] != task.pk:
            errors["task_id"] = f"must be {task.pk}, the task of the ingest token"
        if record["tenant_id"] != task.tenant_id:
            errors["tenant_id"] = f"must be {task.tenant_id}, the tenant of the ingest token's task"
        return errors

    return run


def store_new(model, batch: Batch, build: Callable[[dict], Any], after: Callable[[list], None] | None = None):
    """Store the batch's clean records as ``build(record)`` rows, each id once (a record repeated inside the
    batch included), and hand the rows that were new to ``after`` in the same transaction."""
    rows = {}
    for record in batch.clean:
        rows.setdefault(record["id"], build(record))
    with transaction.atomic():
        stored = insert_new(model, list(rows.values()))
        if after is not None:
            after([rows[pk] for pk in stored])
    return IngestResult(received=batch.received, stored=len(stored), rejected=batch.rejected)


# ---- the endpoint ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestResult:
    received: int
    stored: int
    rejected: list[dict[str, Any]]

    @property
    def duplicates(self) -> int:
        return self.received - self.stored - len(self.rejected)

    def response(self) -> Response:
        counts = {"received": self.received, "stored": self.stored, "duplicates": self.duplicates}
        if not self.rejected:
            return Response({**counts, "rejected": []})
        first = self.rejected[0]
        name, message = next(iter(first["errors"].items()))
        body = error_body(
            "ingest_records_rejected",
            f"{len(self.rejected)} of {self.received} records were rejected and the others stored; "
            f"the first, records[{first['index']}].{name}, {message}.",
            {f"records[{r['index']}].{k}": [v] for r in self.rejected[:20] for k, v in r["errors"].items()},
        )
        return Response({**body, **counts, "rejected": self.rejected}, status=422)


class IngestView(APIView):
    """A batch of one kind of record from a task's adapter; ``store(task, records)`` does the rest."""

    authentication_classes = [IngestTokenAuthentication]
    permission_classes = [IsTaskAdapter]

    def store(self, task: InferenceTask, records: list[Any]) -> IngestResult:
        raise NotImplementedError

    def post(self, request):
        task: InferenceTask = request.auth
        return self.store(task, read_records(request, task)).response()


def read_records(request, task: InferenceTask) -> list[Any]:
    """The batch's ``records`` list, refused whole when the body is too large, malformed or for another task.

    The body is read here, not through DRF's parsers: Django caps ``request.body`` at
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB), smaller than a batch of reflow records may be.
    """
    limit = settings.AICP_INGEST_MAX_BODY_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise BatchTooLarge(f"The body is {length} bytes; a batch may be at most {limit} bytes.")
    raw = request._request.read(limit + 1)
    if len(raw) > limit:
        raise BatchTooLarge(f"The body is over {limit} bytes; a batch may be at most {limit} bytes.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested deeper than JSON decodes
        raise exceptions.ValidationError({"body": ["The body is not valid JSON."]}) from None
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise exceptions.ValidationError({"records": ['The body must be {"task_id": <id>, "records": [...]}.']})
    if body.get("task_id") != task.pk:
        raise exceptions.PermissionDenied(
            f"The ingest token is task {task.pk}'s; it cannot send records for task {body.get('task_id')!r}.",
            code="ingest_task_mismatch",
        )
    records = body["records"]
    if len(records) > MAX_INGEST_RECORDS:
        raise BatchTooLarge(f"A batch may hold at most {MAX_INGEST_RECORDS} records; this one has {len(records)}.")
    return records


class BatchTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "ingest_batch_too_large"

    def __init__(self, detail: str):
        super().__init__(detail, code="ingest_batch_too_large")
