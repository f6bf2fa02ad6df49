"""The task list, a task's page and its actions. Reads go through ``task_list_queryset().restrict(user)`` (the
API's queryset); every action calls the service the API's action calls."""

from __future__ import annotations

import json
import shlex

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotFound, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views import View
from django.views.generic import ListView, TemplateView

from compute_pools.choices import Mode
from controlplane.console.forms import tenants_for
from controlplane.console.views import PAGE_SIZE, ScopedMixin, ServiceActionView
from inference_jobs import services
from inference_jobs.choices import TaskStatus
from inference_jobs.filtersets import InferenceTaskFilterSet
from inference_jobs.forms import TaskScaleForm
from inference_jobs.models import InferenceTask, TaskEvent
from inference_jobs.selectors import task_list_queryset
from inference_jobs.views.observability import latency_context, usage_context, window_named
from tenancy.choices import Action
from tenancy.permissions import user_can

# While a task is in one of these, its page asks for its status every few seconds.
CHANGING = {TaskStatus.PENDING, TaskStatus.DEPLOYING, TaskStatus.UPDATING, TaskStatus.DELETING}
EVENTS_SHOWN = 30


class TaskScopedMixin(ScopedMixin):
    model = InferenceTask

    def base_queryset(self):
        return task_list_queryset()

    def operable_task(self) -> InferenceTask:
        """The task, if the user may change it: another tenant's is a 404, a viewer's attempt a 403."""
        task = self.get_object()
        if not user_can(self.request.user, Action.OPERATE, task.tenant_id):
            raise PermissionDenied
        return task


def task_port(task: InferenceTask) -> int | None:
    try:
        return task.gateway_port.port
    except InferenceTask.gateway_port.RelatedObjectDoesNotExist:
        return None


def task_access_url(task: InferenceTask) -> str | None:
    """What callers use: the gateway's address and the task's port, with the OpenAI-compatible ``/v1``."""
    port = task_port(task)
    return task.gateway.access_url(port) if port is not None else None


def call_snippets(access_url: str, model_name: str) -> dict[str, str]:
    """Ready-to-paste calls of the task: curl and the ``openai`` Python client (streaming)."""
    body = json.dumps({"model": model_name, "messages": [{"role": "user", "content": "Hello!"}]})
    curl = (
        f"curl {shlex.quote(access_url + '/chat/completions')} \\\n"
        '  -H "Authorization: Bearer $AICP_API_KEY" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d {shlex.quote(body)}"
    )
    python = (
        "import os\n\n"
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url={json.dumps(access_url)}, api_key=os.environ["AICP_API_KEY"])\n'
        "stream = client.chat.completions.create(\n"
        f"    model={json.dumps(model_name)},\n"
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        "    stream=True,\n"
        ")\n"
        "for chunk in stream:\n"
        "    if chunk.choices and chunk.choices[0].delta.content:\n"
        '        print(chunk.choices[0].delta.content, end="", flush=True)\n'
        "print()\n"
    )
    return {"curl": curl, "python": python}


class TaskListView(TaskScopedMixin, ListView):
    """Every task the user may see, filtered as the API filters (``InferenceTaskFilterSet``). Asked by htmx
    (``HX-Request``), it answers only the table's rows: the page polls them for live status."""

    template_name = "inference_jobs/task_list.html"
    rows_template_name = "inference_jobs/_task_rows.html"
    context_object_name = "tasks"
    paginate_by = PAGE_SIZE

    def get_queryset(self):
        self.filterset = InferenceTaskFilterSet(self.request.GET or None, queryset=super().get_queryset())
        return self.filterset.qs

    def get_template_names(self):
        return [self.rows_template_name if self.request.headers.get("HX-Request") else self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            title="Inference tasks",
            filter_tenants=tenants_for(self.request.user, Action.VIEW),
            statuses=TaskStatus.choices,
            modes=Mode.choices,
            chosen_statuses=self.request.GET.getlist("status"),
            filtered=any(self.request.GET.get(key) for key in ("q", "tenant", "status", "mode")),
        )
        return context


class TaskDetailView(TaskScopedMixin, TemplateView):
    template_name = "inference_jobs/task_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        task = self.get_object()
        access_url = task_access_url(task)
        user = self.request.user
        context.update(
            title=task.name,
            task=task,
            port=task_port(task),
            access_url=access_url,
            snippets=call_snippets(access_url, task.effective_served_model_name) if access_url else None,
            can_operate=user_can(user, Action.OPERATE, task.tenant_id),
            polling=task.status in CHANGING,
            events=TaskEvent.objects.filter(task=task).select_related("actor")[:EVENTS_SHOWN],
            scale_form=TaskScaleForm(
                initial={"instances": task.instances, "compute_units_per_instance": task.compute_units_per_instance}
            ),
            **latency_context(task, window_named(self.request.GET.get("window"))),
            **usage_context(user, task),
        )
        return context


class TaskStatusView(TaskScopedMixin, View):
    """The status area of a task's page, which htmx polls while the task is changing. When the change is
    over, htmx reloads the whole page (its buttons depend on the state); when the task is gone (deleted),
    it goes to the list."""

    def get(self, request, pk):
        polled = bool(request.headers.get("HX-Request"))
        try:
            task = self.get_object()
        except Http404:
            if not polled:
                raise
            response = HttpResponseNotFound()
            response["HX-Redirect"] = reverse("console:task-list")
            return response
        changing = task.status in CHANGING
        response = render(request, "inference_jobs/_task_status.html", {"task": task, "polling": changing})
        if polled and not changing:
            response["HX-Refresh"] = "true"
        return response


class TaskLatencyView(TaskScopedMixin, View):
    """The latency charts of a task for another window (the window select asks for it through htmx)."""

    def get(self, request, pk):
        task = self.get_object()
        context = {"task": task, **latency_context(task, window_named(request.GET.get("window")))}
        return render(request, "inference_jobs/_latency.html", context)


class TaskActionView(TaskScopedMixin, ServiceActionView):
    """A button on a task's page: one service call, then back to the page with what happened."""

    def target(self) -> InferenceTask:
        return self.operable_task()

    def redirect_url(self, task: InferenceTask) -> str:
        return reverse("console:task-detail", args=[task.pk])


class TaskStartView(TaskActionView):
    def perform(self, task):
        services.task_start(actor=self.request.user, task=task)
        return f"Task {task.name} is being deployed again."


class TaskStopView(TaskActionView):
    def perform(self, task):
        services.task_stop(actor=self.request.user, task=task)
        return f"Task {task.name} is stopped: its compute is released, it keeps its port."


class TaskScaleView(TaskActionView):
    def perform(self, task):
        form = TaskScaleForm(self.request.POST)
        if not form.is_valid():
            raise ValidationError(
                [f"{form[name].label}: {' '.join(errors)}" for name, errors in form.errors.items()], code="invalid"
            )
        scaled = services.task_scale(actor=self.request.user, task=task, **form.cleaned_data)
        return f"Task {task.name} runs {scaled.instances} instance(s) of {scaled.compute_units_per_instance} card(s)."


class TaskUpdateImageView(TaskActionView):
    def perform(self, task):
        updated = services.task_update_image(actor=self.request.user, task=task)
        return f"Task {task.name} is moving to runtime image version {updated.runtime_image_version.version}."


class TaskDeleteView(TaskScopedMixin, View):
    """Delete behind a confirmation page, so that it works without JavaScript."""

    def get(self, request, pk):
        task = self.operable_task()
        return render(
            request, "inference_jobs/task_confirm_delete.html", {"task": task, "title": f"Delete task {task.name}"}
        )

    def post(self, request, pk):
        task = self.operable_task()
        services.task_delete(actor=request.user, task=task)
        messages.success(request, f"Task {task.name} is being deleted; its port and compute are freed once it is gone.")
        return HttpResponseRedirect(reverse("console:task-list"))
