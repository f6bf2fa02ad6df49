from django.db import models


class Vendor(models.TextChoices):
    NVIDIA = "nvidia", "NVIDIA"
    ILUVATAR = "iluvatar", "Iluvatar CoreX"
    NONE = "none", "None (CPU)"


class Mode(models.TextChoices):
    """How a task serves its model: our PyTorch engine (normal) or vLLM (high-performance)."""

    NORMAL = "normal", "Normal (PyTorch runtime)"
    HIGH_PERFORMANCE = "high_performance", "High-performance (vLLM)"
