"""The embedded default on one machine: ``make run`` (``python -m controlplane.embedded``).

``model_cache`` builds the demo model once (no Django), ``demo`` sets up the demo platform through the apps'
services, ``supervisor`` starts and stops the web server, the Celery worker and beat. See ``docs/embedded.md``.
"""
