from django.db import models


class DesiredState(models.TextChoices):
    """What the people asked for; the reconciler converges the cluster to it."""

    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    DELETED = "deleted", "Deleted"


class TaskStatus(models.TextChoices):
    """What the reconciler last observed.

    create → pending → deploying → running; stop → stopped; start → deploying; update image → updating →
    running; delete → deleting → gone (the row is removed once its cluster objects are, freeing its port).
    ``failed`` carries the cause in ``status_message`` (image pull, crash loop, unschedulable, load error).
    """

    PENDING = "pending", "Pending"
    DEPLOYING = "deploying", "Deploying"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    UPDATING = "updating", "Updating"
    FAILED = "failed", "Failed"
    DELETING = "deleting", "Deleting"


class SamplingPolicy(models.TextChoices):
    DEFAULTS = "defaults", "Defaults (a caller's explicit value wins)"
    LOCKED = "locked", "Locked (always applied)"


class EventLevel(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"
