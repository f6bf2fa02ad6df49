"""Template helpers of the console."""

from __future__ import annotations

from django import template

from tenancy.permissions import user_can

register = template.Library()

_STATUS_TONE = {
    "running": "ok",
    "ready": "ok",
    "approved": "ok",
    "deploying": "busy",
    "updating": "busy",
    "pending": "busy",
    "uploading": "busy",
    "inspecting": "busy",
    "deleting": "busy",
    "stopped": "idle",
    "failed": "bad",
    "rejected": "bad",
}


@register.filter
def rule_errors(errors) -> list[tuple[str, str]]:
    """``(code, message)`` of a form's or a field's errors, so that a refused rule can be shown with its code
    (the same code the API answers)."""
    if not errors:
        return []
    return [(error.code or "invalid", message) for error in errors.as_data() for message in error.messages]


@register.filter
def tone(status: str) -> str:
    """The colour family of a status badge."""
    return _STATUS_TONE.get(str(status), "idle")


@register.simple_tag
def percent(part, whole) -> int:
    """``{% percent used capacity %}``: a share as a whole percentage, clamped to 0..100 (for meters)."""
    try:
        return max(0, min(100, round(100 * float(part) / float(whole))))
    except (TypeError, ValueError, ZeroDivisionError):
        return 0


@register.simple_tag(takes_context=True)
def can(context, action: str, tenant_id) -> bool:
    """Whether the signed-in user may ``view``, ``operate`` or ``manage`` objects of ``tenant_id``."""
    return user_can(context["request"].user, action, tenant_id)
