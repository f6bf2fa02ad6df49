from inference_jobs.api.views import InferenceTaskViewSet


def register(router) -> None:
    router.register("tasks", InferenceTaskViewSet, basename="task")
