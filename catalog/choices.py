from django.db import models


class ModelFormat(models.TextChoices):
    SAFETENSORS = "safetensors", "Hugging Face, safetensors weights"
    PYTORCH = "pytorch", "Hugging Face, PyTorch .bin weights"


class ModelStatus(models.TextChoices):
    """uploading → inspecting → ready | failed (with the reason in ``status_message``)."""

    UPLOADING = "uploading", "Uploading"
    INSPECTING = "inspecting", "Inspecting"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
