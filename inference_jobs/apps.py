from django.apps import AppConfig


class InferenceJobsConfig(AppConfig):
    name = "inference_jobs"
    verbose_name = "Inference tasks"
