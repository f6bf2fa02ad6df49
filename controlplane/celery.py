"""The Celery app of the control plane: reconciles and periodic sweeps run on its workers.

Configured from the Django settings (every ``CELERY_*`` name there); tasks are found in each installed app's
``tasks`` module. ``make worker`` and ``make beat`` start the two processes.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("aicp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
