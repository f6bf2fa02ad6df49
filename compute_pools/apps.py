from django.apps import AppConfig


class ComputePoolsConfig(AppConfig):
    name = "compute_pools"
    verbose_name = "Compute pools"
