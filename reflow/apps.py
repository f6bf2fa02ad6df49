from django.apps import AppConfig


class ReflowConfig(AppConfig):
    name = "reflow"
    verbose_name = "Data reflow: captured request/response pairs"
