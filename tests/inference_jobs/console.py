"""What the console's task tests share: a signed-in client, the create form's defaults, and the errors a
page shows with their codes."""

from __future__ import annotations

import html
import re

from django.test import Client

FORM_DEFAULTS = {
    "instances": 1,
    "async_batching": "on",
    "temperature": 0.7,
    "top_p": 0.9,
    "repetition_penalty": 1.0,
    "sampling_policy": "defaults",
    "ttft_slo_ms": 2000,
    "tpot_slo_ms": 100,
}


def console_as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def as_input(value):
    """A model instance as the API and the form name it: slug where it has one, else primary key."""
    return getattr(value, "slug", None) or getattr(value, "pk", None) or value


def api_payload(deployable, fields: dict) -> dict:
    return {**deployable.api_payload(), **{key: as_input(value) for key, value in fields.items()}}


def form_errors(page: bytes, form_id: str = "task-form") -> list[tuple[str | None, str, str]]:
    """``(field, code, message)`` of each error shown in the form: field None for an error above the form."""
    text = page.decode()
    start = text.index(f'id="{form_id}"')
    form = text[start : text.index("</form>", start)]
    found = []
    for field, body in re.findall(r'<div class="field[^"]*" id="field-([\w-]+)">(.*?)</div>', form, re.S):
        for code, message in re.findall(r'<p class="error" data-code="([\w-]+)">(.*?)</p>', body, re.S):
            found.append((field, code, html.unescape(message)))
    for code, message in re.findall(r'<p class="error form-error" data-code="([\w-]+)">(.*?)</p>', form, re.S):
        found.append((None, code, html.unescape(message)))
    return found
