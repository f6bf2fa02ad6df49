"""Console pages of inference tasks: the list, the create form with its live dry run, a task's page with its
actions, latency and usage, and the playground."""

from inference_jobs.views.create import TaskCreateView, TaskDryRunView
from inference_jobs.views.playground import TaskPlaygroundStreamView, TaskPlaygroundView
from inference_jobs.views.tasks import (
    TaskDeleteView,
    TaskDetailView,
    TaskLatencyView,
    TaskListView,
    TaskScaleView,
    TaskStartView,
    TaskStatusView,
    TaskStopView,
    TaskUpdateImageView,
)

__all__ = [
    "TaskCreateView",
    "TaskDeleteView",
    "TaskDetailView",
    "TaskDryRunView",
    "TaskLatencyView",
    "TaskListView",
    "TaskPlaygroundStreamView",
    "TaskPlaygroundView",
    "TaskScaleView",
    "TaskStartView",
    "TaskStatusView",
    "TaskStopView",
    "TaskUpdateImageView",
]
