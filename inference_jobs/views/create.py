"""Creating a task: the form and its live dry run.

The form checks shape only and calls ``services.task_create`` as the API's create does; a refused rule comes
back on the field it names with its code. The dry-run panel calls ``services.task_dry_run`` (the API's
``tasks/dry-run/``) on every change of the form, and shows the sizing advisor's recommendation for the chosen
model on the chosen pool's cards.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.urls import reverse
from django.views import View

from catalog.sizing import size_model_for_pool
from controlplane.console.views import ServiceFormView, SignedInMixin
from inference_jobs import services
from inference_jobs.forms import ADMISSION_FIELDS, TaskCreateForm
from tenancy.choices import Action
from tenancy.permissions import user_can_anywhere

# What each rule checks, in words; the code is shown next to it (the code a create would refuse with).
RULE_LABELS = {
    "platform_task_limit": "The platform runs fewer than its 500 tasks",
    "tenant_quota_tasks": "The tenant's task quota has room",
    "task_name_taken": "The name is free in the tenant",
    "model_not_ready": "The model is ready",
    "normal_mode_model_unsupported": "The mode can serve this model",
    "pool_not_granted": "The pool is granted to the tenant",
    "mode_not_supported_by_pool": "The pool's cards run this mode",
    "runtime_image_unavailable": "A runtime image exists for this mode and card",
    "tenant_quota_compute_units": "The tenant's compute quota has room",
    "pool_capacity_exceeded": "The pool has enough free cards",
    "pool_grant_share_exceeded": "The tenant's share of the pool has room",
    "gateway_inactive": "The gateway takes new tasks",
    "gateway_ports_exhausted": "The gateway has a free port",
}


def dry_run_context(form: TaskCreateForm) -> dict:
    """What the dry-run panel shows for ``form``: the fields admission still needs, or every rule's verdict
    and the compute recommendation. Never an error page: an incomplete form is the normal case."""
    if not form.is_bound:
        return {"needed": [(form[name].label, "") for name in ADMISSION_FIELDS if not form[name].value()]}
    form = TaskCreateForm(form.data, user=form.user)  # fresh: a refused create left its error on the form
    form.is_valid()
    needed = [
        (form[name].label, " ".join(form.errors.get(name, [])) if form.data.get(name) else "")
        for name in ADMISSION_FIELDS
        if name not in form.cleaned_data
    ]
    if needed:
        return {"needed": needed}
    dry_run = services.task_dry_run(**form.admission_fields())
    request = dry_run.request
    verdicts = [
        {"rule": v.rule, "label": RULE_LABELS.get(v.rule, v.rule), "accepted": v.accepted, "message": v.message,
         "field": form[v.field].label if v.field in form.fields else None}
        for v in dry_run.result.verdicts
    ]  # fmt: skip
    return {
        "accepted": dry_run.result.accepted,
        "verdicts": verdicts,
        "compute_units_per_instance": request.compute_units_per_instance,
        "compute_units": request.compute_units,
        "sizing": size_model_for_pool(request.model, request.compute_pool),
        "model": request.model,
        "pool": request.compute_pool,
        "other_errors": [
            form[name].label for name in form.errors if name in form.fields and name not in ADMISSION_FIELDS
        ],
    }


class OperatorOnlyMixin(SignedInMixin):
    """Creating needs the admin or member role in some tenant; anyone else is told no (403), as by the API."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not user_can_anywhere(request.user, Action.OPERATE):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)


class TaskCreateView(OperatorOnlyMixin, ServiceFormView):
    form_class = TaskCreateForm
    template_name = "inference_jobs/task_form.html"
    title = "New inference task"
    submit_label = "Create task"
    success_message = "Task {result.name} was created; it is being deployed."

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.request.user}

    def get_initial(self):
        """``?model=<id>&tenant=<slug>`` (a model page's "Create a task from this model") preselects them; a value
        the user may not choose is simply not offered."""
        chosen = {key: self.request.GET[key] for key in ("model", "tenant") if key in self.request.GET}
        return {**super().get_initial(), **chosen}

    def post(self, request, *args, **kwargs):
        if "dry_run" in request.POST:  # the "Check" button: verdicts without creating (the page without JS)
            form = self.get_form()
            return self.render_to_response(self.get_context_data(form=form, checked=True))
        return super().post(request, *args, **kwargs)

    def perform(self, form):
        return services.task_create(actor=self.request.user, **form.service_fields())

    def success_url_for(self, task) -> str:
        return reverse("console:task-detail", args=[task.pk])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(dry_run_context(context["form"]))
        context["cancel_url"] = reverse("console:task-list")
        return context


class TaskDryRunView(OperatorOnlyMixin, View):
    """The dry-run panel alone, for htmx: posted the whole form on each change."""

    http_method_names = ["post"]

    def post(self, request):
        form = TaskCreateForm(request.POST, user=request.user)
        return render(request, "inference_jobs/_dry_run.html", dry_run_context(form))
