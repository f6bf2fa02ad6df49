from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The web console's shared parts: base views, form plumbing, template tags, the dashboard."""

    name = "controlplane.console"
    label = "console"
