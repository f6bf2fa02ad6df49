"""Console forms of reflow review. Shape only, as the API's serializers: whether an edit is acceptable and whether
every selected record may be reviewed is for ``reflow.services`` to say."""

from __future__ import annotations

import uuid

from django import forms
from django.core.exceptions import ValidationError

from reflow.choices import ExportKind, ReviewAction
from reflow.constants import MAX_BULK_REVIEW

APPROVE_OR_REJECT = [(ReviewAction.APPROVE, "Approve"), (ReviewAction.REJECT, "Reject")]


class ReviewForm(forms.Form):
    """One record's approve / reject button."""

    action = forms.ChoiceField(choices=APPROVE_OR_REJECT)


class EditForm(forms.Form):
    """The corrected answer; saving it approves the record and keeps the captured output."""

    edited_output = forms.CharField(
        required=False,
        strip=False,
        label="Corrected answer",
        widget=forms.Textarea(attrs={"rows": 10}),
        help_text="What the model should have answered. Saving approves the record; the captured answer is kept "
        "and exported as the rejected side of a preference pair.",
    )


class RecordIdsField(forms.Field):
    """The ids of the checked rows (``<input type=checkbox name=ids>``)."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {
        "required": "Select the records to review.",
        "invalid": "Record ids are UUIDs.",
        "too_many": f"Review at most {MAX_BULK_REVIEW} records at once.",
    }

    def to_python(self, value) -> list[uuid.UUID]:
        try:
            ids = [uuid.UUID(str(item)) for item in value or []]
        except ValueError as exc:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from exc
        if len(ids) > MAX_BULK_REVIEW:
            raise ValidationError(self.error_messages["too_many"], code="invalid")
        return ids


class BulkReviewForm(forms.Form):
    ids = RecordIdsField()
    action = forms.ChoiceField(choices=APPROVE_OR_REJECT)


class ExportForm(forms.Form):
    kind = forms.ChoiceField(choices=ExportKind.choices, required=False)

    def clean_kind(self) -> str:
        return self.cleaned_data["kind"] or ExportKind.CHAT
