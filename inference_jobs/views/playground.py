"""The playground: chat with a task through its access URL, as its callers do (``inference_jobs.playground``
relays the call). Only people who may operate the task's tenant may use it; the API key they type is sent on
to the task's adapter and is kept nowhere (never in the session, a log or an error report)."""

from __future__ import annotations

import json

from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.debug import sensitive_post_parameters

from inference_jobs.choices import TaskStatus
from inference_jobs.forms import PlaygroundForm
from inference_jobs.models import InferenceTask
from inference_jobs.playground import (
    AdapterError,
    answer_text,
    chat_complete,
    chat_stream_open,
    error_event,
)
from inference_jobs.views.tasks import TaskScopedMixin, task_access_url

hide_api_key = method_decorator(sensitive_post_parameters("api_key"), name="dispatch")


def _request_body(task: InferenceTask, form: PlaygroundForm) -> dict:
    return {"model": task.effective_served_model_name, "messages": form.messages(), **form.sampling()}


def _with_status_hint(task: InferenceTask, error: AdapterError) -> AdapterError:
    """A call that found no one listening says what the task is doing, which is usually why."""
    if error.status in (502, 504) and task.status != TaskStatus.RUNNING:
        return AdapterError(f"{error.message} The task is {task.get_status_display().lower()}.", status=error.status)
    return error


def _first_error(form: PlaygroundForm) -> str:
    for name, errors in form.errors.items():
        label = form[name].label if name in form.fields else ""
        return f"{label}: {errors[0]}" if label else errors[0]
    return "The message could not be sent."


@hide_api_key
class TaskPlaygroundView(TaskScopedMixin, View):
    """The chat page. With JavaScript the answer streams in through ``TaskPlaygroundStreamView``; without it
    the form posts here and the page comes back with the whole answer."""

    template_name = "inference_jobs/task_playground.html"

    def initial(self, task: InferenceTask) -> dict:
        return {
            "system_prompt": task.system_prompt,
            "temperature": task.temperature,
            "top_p": task.top_p,
            "repetition_penalty": task.repetition_penalty,
            "max_tokens": PlaygroundForm.base_fields["max_tokens"].initial,
        }

    def page(self, request, task, form, conversation, error=""):
        context = {
            "title": f"Playground · {task.name}",
            "task": task,
            "form": form,
            "conversation": conversation,
            "error": error,
            "access_url": task_access_url(task),
        }
        return render(request, self.template_name, context)

    def get(self, request, pk):
        task = self.operable_task()
        return self.page(request, task, PlaygroundForm(initial=self.initial(task)), [])

    def post(self, request, pk):
        task = self.operable_task()
        form = PlaygroundForm(request.POST)
        if not form.is_valid():
            history = form.cleaned_data.get("history", [])
            return self.page(request, task, form, history)
        kept = {name: value for name, value in form.cleaned_data.items() if name != "api_key"}  # never echoed
        conversation = [*form.cleaned_data["history"], {"role": "user", "content": form.cleaned_data["message"]}]
        error = ""
        access_url = task_access_url(task)
        try:
            if access_url is None:
                raise AdapterError("The task has no port on its gateway.", status=502)
            answer = answer_text(chat_complete(access_url, form.cleaned_data["api_key"], _request_body(task, form)))
        except AdapterError as failure:
            error = _with_status_hint(task, failure).message
            conversation.pop()  # the turn did not happen; the message stays in the box to send again
            next_form = PlaygroundForm(initial={**kept, "history": json.dumps(conversation)})
        else:
            conversation.append({"role": "assistant", "content": answer})
            next_form = PlaygroundForm(initial={**kept, "message": "", "history": json.dumps(conversation)})
        return self.page(request, task, next_form, conversation, error)


@hide_api_key
class TaskPlaygroundStreamView(TaskScopedMixin, View):
    """Relay a streamed chat completion as server-sent events. Whatever goes wrong with the task is one
    ``error`` event carrying a readable message and the adapter's status, in a 200 answer: the relay did its
    job, and a refused key or a stopped task is the user's news, not the console's failure (a 4xx or 5xx
    here would be logged as the console's own). A turn that is not well formed is a 400."""

    http_method_names = ["post"]

    def post(self, request, pk):
        task = self.operable_task()
        form = PlaygroundForm(request.POST)
        if not form.is_valid():
            return self.events([error_event(AdapterError(_first_error(form), status=400))], status=400)
        access_url = task_access_url(task)
        try:
            if access_url is None:
                raise AdapterError("The task has no port on its gateway.", status=502)
            stream = chat_stream_open(access_url, form.cleaned_data["api_key"], _request_body(task, form))
        except AdapterError as failure:
            failure = _with_status_hint(task, failure)
            return self.events([error_event(failure)])
        return self.events(stream.events())

    @staticmethod
    def events(events, status: int = 200) -> StreamingHttpResponse:
        response = StreamingHttpResponse(events, content_type="text/event-stream", status=status)
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx and the like: pass each event on at once
        return response
