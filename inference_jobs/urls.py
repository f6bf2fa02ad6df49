"""Console pages of this app (the REST API's routes are in api/urls.py)."""

from django.urls import path

from inference_jobs import views

urlpatterns = [
    path("tasks/", views.TaskListView.as_view(), name="task-list"),
    path("tasks/new/", views.TaskCreateView.as_view(), name="task-create"),
    path("tasks/dry-run/", views.TaskDryRunView.as_view(), name="task-dry-run"),
    path("tasks/<int:pk>/", views.TaskDetailView.as_view(), name="task-detail"),
    path("tasks/<int:pk>/status/", views.TaskStatusView.as_view(), name="task-status"),
    path("tasks/<int:pk>/latency/", views.TaskLatencyView.as_view(), name="task-latency"),
    path("tasks/<int:pk>/start/", views.TaskStartView.as_view(), name="task-start"),
    path("tasks/<int:pk>/stop/", views.TaskStopView.as_view(), name="task-stop"),
    path("tasks/<int:pk>/scale/", views.TaskScaleView.as_view(), name="task-scale"),
    path("tasks/<int:pk>/update-image/", views.TaskUpdateImageView.as_view(), name="task-update-image"),
    path("tasks/<int:pk>/delete/", views.TaskDeleteView.as_view(), name="task-delete"),
    path("tasks/<int:pk>/playground/", views.TaskPlaygroundView.as_view(), name="task-playground"),
    path("tasks/<int:pk>/playground/stream/", views.TaskPlaygroundStreamView.as_view(), name="task-playground-stream"),
]
