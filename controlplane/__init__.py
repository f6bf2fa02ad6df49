# The Celery app loads with Django, so that @shared_task binds to it (the standard Django integration).
from controlplane.celery import app as celery_app

__all__ = ("celery_app",)
