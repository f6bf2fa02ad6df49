"""Training sets from reviewed records, one JSON object per line.

* ``chat``: every approved record as ``{"messages": [...the conversation..., {"role": "assistant", "content":
  <the edited output, else the captured one>}]}``, the format chat fine-tuning tools read.
* ``preference``: every approved record a person edited as ``{"prompt": [...the conversation...], "chosen":
  [{"role": "assistant", "content": <edited>}], "rejected": [{"role": "assistant", "content": <captured>}]}``,
  the conversational preference format of DPO trainers (e.g. TRL's).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.db.models import QuerySet

from reflow.choices import ExportKind, ReviewStatus


def _assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


def export_queryset(records: QuerySet, kind: str) -> QuerySet:
    approved = records.filter(review_status=ReviewStatus.APPROVED)
    if kind == ExportKind.PREFERENCE:
        approved = approved.filter(edited_output__isnull=False)
    return approved.order_by("started_at", "id")


def export_lines(records: QuerySet, kind: str) -> Iterator[str]:
    fields = ("messages", "output", "edited_output")
    for messages, output, edited in export_queryset(records, kind).values_list(*fields).iterator(chunk_size=500):
        if kind == ExportKind.PREFERENCE:
            line = {"prompt": messages, "chosen": [_assistant(edited)], "rejected": [_assistant(output)]}
        else:
            line = {"messages": [*messages, _assistant(edited if edited is not None else output)]}
        yield json.dumps(line, ensure_ascii=False) + "\n"
