from django.db import models


class Scheme(models.TextChoices):
    HTTP = "http", "http"
    HTTPS = "https", "https"
