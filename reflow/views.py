"""Console pages of reflow review: the captured pairs a user may see, filtered with the API's FilterSet; approve,
reject and edit one record or approve / reject many; and the export as JSONL.

Reads are the API's (``restrict`` over the same base queryset, ``ReflowRecordFilterSet``, ``reflow.export``);
reviews go through ``reflow.services``, which audit them. Every role reads and exports; tenant admins and
members review, and a viewer's review is a 403.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views import View
from django.views.generic import ListView

from controlplane.console.forms import tenants_for
from controlplane.console.views import PAGE_SIZE, ScopedMixin, ServiceActionView, ServiceFormView
from inference_jobs.models import InferenceTask
from reflow import services
from reflow.choices import ReviewAction
from reflow.export import export_lines
from reflow.filtersets import ReflowRecordFilterSet
from reflow.forms import BulkReviewForm, EditForm, ExportForm, ReviewForm
from reflow.models import ReflowRecord
from tenancy.choices import Action
from tenancy.permissions import user_can, user_can_anywhere

#: The filters an export link carries: which records, not how far they have been screened.
EXPORT_FILTERS = ("tenant", "task", "since", "until")
PREVIEW_CHARS = 160


def message_text(content: Any) -> str:
    """A chat message's content as text: a string as it is, the text parts of a multi-part content."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        return "\n".join(parts)
    return "" if content is None else json.dumps(content, ensure_ascii=False)


def last_user_message(messages: Any) -> str:
    users = [m for m in messages or [] if isinstance(m, dict) and m.get("role") == "user"]
    return message_text(users[-1].get("content")) if users else ""


def _back(request, fallback: str) -> str:
    """The page a review came from (the list with its filters), when it is one of ours."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


class RecordMixin(ScopedMixin):
    model = ReflowRecord

    def base_queryset(self):
        return ReflowRecord.objects.select_related("tenant", "reviewed_by")

    def reviewable_record(self) -> ReflowRecord:
        """The record of the URL: 404 for another tenant's, 403 for one the user may only read."""
        record = self.get_object()
        if not user_can(self.request.user, Action.OPERATE, record.tenant_id):
            raise PermissionDenied
        return record


def filterset_for(request, queryset) -> ReflowRecordFilterSet:
    """The API's FilterSet, its form dressed for people: tenants and tasks to choose from, date pickers."""
    filterset = ReflowRecordFilterSet(request.GET, queryset=queryset)
    fields = filterset.form.fields
    user = request.user
    tenant_choices = [(tenant.slug, tenant.name) for tenant in tenants_for(user, Action.VIEW)]
    fields["tenant"].widget = forms.Select(choices=[("", "Every tenant"), *tenant_choices])
    tasks = (
        InferenceTask.objects.restrict(user).order_by("tenant__slug", "name").values_list("pk", "name", "tenant__slug")
    )
    several_tenants = len(tenant_choices) > 1
    task_choices = [(pk, f"{name} ({tenant})" if several_tenants else name) for pk, name, tenant in tasks]
    fields["task"].widget = forms.Select(choices=[("", "Every task"), *task_choices])
    for name, label in (("since", "Since"), ("until", "Until")):
        fields[name].widget = forms.DateTimeInput(attrs={"type": "datetime-local"})
        fields[name].label, fields[name].help_text = label, "UTC"
    for name in ("review_status", "endpoint"):
        fields[name].empty_label = "Any"
    fields["tenant"].label, fields["task"].label, fields["q"].label = "Tenant", "Task", "Text"
    del fields["api_key"]
    return filterset


class ReflowListView(RecordMixin, ListView):
    template_name = "reflow/record_list.html"
    paginate_by = PAGE_SIZE

    def get_queryset(self):
        self.filterset = filterset_for(self.request, super().get_queryset())
        records = self.filterset.qs if self.filterset.is_valid() else self.filterset.queryset.none()
        return records.order_by("-started_at", "id")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        for record in context["object_list"]:
            record.preview = last_user_message(record.messages)
        scope = {key: self.request.GET[key] for key in EXPORT_FILTERS if self.request.GET.get(key)}
        export = reverse("console:reflow-export")
        context.update(
            title="Reflow review",
            filter_form=self.filterset.form,
            export_chat_url=f"{export}?{urlencode({**scope, 'kind': 'chat'})}",
            export_preference_url=f"{export}?{urlencode({**scope, 'kind': 'preference'})}",
            here=self.request.get_full_path(),
        )
        return context


def render_row(request, record: ReflowRecord, *, next_url: str) -> HttpResponse:
    record.preview = last_user_message(record.messages)
    return render(request, "reflow/_row.html", {"record": record, "here": next_url})


class ReflowReviewView(RecordMixin, View):
    """Approve or reject one record (a row's buttons). htmx gets the row back; a plain form goes back to the list."""

    http_method_names = ["post"]

    def post(self, request, pk):
        record = self.reviewable_record()
        form = ReviewForm(request.POST)
        if not form.is_valid():
            return HttpResponseBadRequest("Approve or reject.")
        action = form.cleaned_data["action"]
        record = services.reflow_review(actor=request.user, record=record, action=action)
        record = self.get_queryset().get(pk=record.pk)
        back = _back(request, reverse("console:reflow-list"))
        if request.headers.get("HX-Request"):
            return render_row(request, record, next_url=back)
        verb = "approved" if action == ReviewAction.APPROVE else "rejected"
        messages.success(request, f"Record of {record.task_name} at {record.started_at:%Y-%m-%d %H:%M:%S} {verb}.")
        return HttpResponseRedirect(back)


class ReflowDetailView(RecordMixin, ServiceFormView):
    """The whole conversation and output; operators approve, reject, or save a corrected answer (which
    approves the record and keeps the original)."""

    form_class = EditForm
    template_name = "reflow/record_detail.html"
    submit_label = "Save the correction and approve"
    success_message = "Correction saved; the record is approved."

    def get(self, request, *args, **kwargs):
        self.record = self.get_object()
        return super().get(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        self.record = self.reviewable_record()
        return super().post(request, *args, **kwargs)

    def get_initial(self):
        record = self.record
        return {"edited_output": record.edited_output if record.edited_output is not None else record.output}

    def perform(self, form):
        edited = form.cleaned_data["edited_output"]
        return services.reflow_review(actor=self.request.user, record=self.record, action="edit", edited_output=edited)

    def success_url_for(self, result) -> str:
        back = _back(self.request, "")
        return reverse("console:reflow-detail", args=[result.pk]) + (f"?{urlencode({'next': back})}" if back else "")

    def get_context_data(self, **kwargs):
        record = self.record
        conversation = [
            (message.get("role", "?"), message_text(message.get("content")))
            for message in record.messages
            if isinstance(message, dict)
        ]
        return super().get_context_data(
            title=f"{record.task_name} · {record.started_at:%Y-%m-%d %H:%M:%S}",
            record=record,
            conversation=conversation,
            can_review=user_can(self.request.user, Action.OPERATE, record.tenant_id),
            back=_back(self.request, reverse("console:reflow-list")),
            **kwargs,
        )


class ReflowBulkReviewView(ServiceActionView):
    """Approve or reject the checked records, all or nothing: a record the user may not review refuses the
    whole request, shown with its code."""

    def post(self, request, *args, **kwargs):
        if not user_can_anywhere(request.user, Action.OPERATE):
            raise PermissionDenied
        return super().post(request, *args, **kwargs)

    def target(self) -> BulkReviewForm:
        return BulkReviewForm(self.request.POST)

    def perform(self, form: BulkReviewForm) -> str:
        if not form.is_valid():
            raise ValidationError([message for errors in form.errors.values() for message in errors])
        reviewable = ReflowRecord.objects.restrict(self.request.user, Action.OPERATE)
        action = form.cleaned_data["action"]
        count = services.reflow_review_bulk(
            actor=self.request.user, records=reviewable, ids=form.cleaned_data["ids"], action=action
        )
        verb = "approved" if action == ReviewAction.APPROVE else "rejected"
        return f"{count} record{'s' if count != 1 else ''} {verb}."

    def redirect_url(self, form) -> str:
        return _back(self.request, reverse("console:reflow-list"))


class ReflowExportView(RecordMixin, View):
    """The API's export (``reflow-records/export/``) for the records the list's filters select: chat JSONL of the
    approved records, or preference pairs of the edited ones."""

    def get(self, request):
        kind_form = ExportForm(request.GET)
        filterset = ReflowRecordFilterSet(request.GET, queryset=self.get_queryset())
        if not (kind_form.is_valid() and filterset.is_valid()):
            errors = {**kind_form.errors, **filterset.errors}
            lines = [f"{field}: {' '.join(messages)}" for field, messages in errors.items()]
            return HttpResponseBadRequest("\n".join(lines), content_type="text/plain")
        kind = kind_form.cleaned_data["kind"]
        response = StreamingHttpResponse(export_lines(filterset.qs, kind), content_type="application/jsonl")
        response["Content-Disposition"] = f'attachment; filename="reflow-{kind}.jsonl"'
        return response
