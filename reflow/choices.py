from django.db import models


class ReviewStatus(models.TextChoices):
    """A captured record waits for a person; approved records (edited or not) are what the export contains."""

    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class ReviewAction(models.TextChoices):
    APPROVE = "approve", "Approve"
    EDIT = "edit", "Edit (and approve)"
    REJECT = "reject", "Reject"


class Endpoint(models.TextChoices):
    CHAT = "chat", "Chat completions"
    COMPLETIONS = "completions", "Completions"


class ExportKind(models.TextChoices):
    CHAT = "chat", "Chat JSONL of approved records"
    PREFERENCE = "preference", "Preference pairs of edited records"
