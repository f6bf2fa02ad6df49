from django.db import models


class Resolution(models.TextChoices):
    """How much time one latency roll-up row covers."""

    HOUR = "hour", "Hour"
    DAY = "day", "Day"
