"""What every console page shares: who may open it, how it reads, and how it writes.

The console is the REST API's twin for people. It reads through the same tenant scoping
(``restrict(user, action)``) and writes through the same service functions, so a rule the platform refuses
through the API it refuses here too, with the same code and message, shown on the form field it concerns.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.views import View
from django.views.generic import FormView

from controlplane.console.forms import add_rule_error
from controlplane.errors import PlatformRuleError
from tenancy.choices import Action
from tenancy.querysets import is_platform_admin

PAGE_SIZE = 50


class SignedInMixin(LoginRequiredMixin):
    """Every console page needs a signed-in user; anyone else is sent to the sign-in page."""


class PlatformAdminMixin(SignedInMixin):
    """Pages that build the platform. For anyone but a platform admin they do not exist (404), as another
    tenant's objects do not."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not is_platform_admin(request.user):
            raise Http404
        return super().dispatch(request, *args, **kwargs)


class ScopedMixin(SignedInMixin):
    """Reads of tenant-owned rows: only what ``restrict(user, action)`` admits, so another tenant's object is a
    404 here exactly as in the API."""

    model = None
    action = Action.VIEW

    def base_queryset(self):
        return self.model.objects.all()

    def get_queryset(self):
        return self.base_queryset().restrict(self.request.user, self.action)

    def get_object(self, queryset=None):
        queryset = self.get_queryset() if queryset is None else queryset
        try:
            return queryset.get(pk=self.kwargs["pk"])
        except (self.model.DoesNotExist, ValueError, TypeError):
            raise Http404 from None


class ServiceFormView(SignedInMixin, FormView):
    """A console write: the form checks only the shape of the input, ``perform`` calls the service, and a
    refused rule is shown on the field it concerns (or above the form). Nothing is written when it refuses."""

    template_name = "console/form.html"
    title = ""
    submit_label = "Save"
    success_message = ""

    def perform(self, form) -> Any:
        raise NotImplementedError

    def success_url_for(self, result) -> str:
        return self.get_success_url()

    def form_valid(self, form):
        try:
            result = self.perform(form)
        except (PlatformRuleError, ValidationError) as error:
            add_rule_error(form, error)
            return self.form_invalid(form)
        except ObjectDoesNotExist as error:  # removed by someone else after this page found it, as in the API
            raise Http404("It was removed while this request was being answered.") from error
        if self.success_message:
            messages.success(self.request, self.success_message.format(result=result))
        return HttpResponseRedirect(self.success_url_for(result))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("title", self.title)
        context.setdefault("submit_label", self.submit_label)
        return context


class ServiceActionView(SignedInMixin, View):
    """A button (POST only): run one service call on one object, then go back with what happened. A refused
    rule comes back as an error message carrying its code."""

    http_method_names = ["post"]

    def target(self):
        raise NotImplementedError

    def perform(self, target) -> str:
        """Do it; return the success message."""
        raise NotImplementedError

    def redirect_url(self, target) -> str:
        raise NotImplementedError

    def post(self, request, *args, **kwargs):
        target = self.target()
        try:
            message = self.perform(target)
        except PlatformRuleError as error:
            messages.error(request, error.message, extra_tags=f"code-{error.code}")
        except ValidationError as error:
            messages.error(request, " ".join(error.messages), extra_tags="code-invalid")
        except ObjectDoesNotExist:  # someone else removed it after this page found it
            messages.error(request, "It was removed by someone else in the meantime.", extra_tags="code-not_found")
        else:
            messages.success(request, message)
        return HttpResponseRedirect(self.redirect_url(target))


class DashboardView(SignedInMixin, View):
    """The first page: for a platform admin every tenant's tasks and the pools' and gateways' usage; for a
    tenant user the tasks and quota use of their tenants."""

    recent_tasks = 10

    def get(self, request):
        from django.db.models import Count
        from django.shortcuts import render

        from compute_pools.selectors import compute_pool_list_queryset
        from gateways.selectors import gateway_list_queryset
        from inference_jobs.models import InferenceTask
        from inference_jobs.selectors import task_list_queryset
        from tenancy.querysets import tenant_ids_for
        from tenancy.selectors import tenant_list_queryset

        user = request.user
        tasks = InferenceTask.objects.restrict(user)
        context = {
            "title": "Dashboard",
            "status_counts": dict(tasks.order_by().values_list("status").annotate(n=Count("id"))),
            "task_total": tasks.count(),
            "recent": task_list_queryset().restrict(user).order_by("-created_at")[: self.recent_tasks],
        }
        if is_platform_admin(user):
            context["pools"] = compute_pool_list_queryset().order_by("name")
            context["gateways"] = gateway_list_queryset().order_by("name")
            context["tenants"] = tenant_list_queryset().order_by("name")
        else:
            context["tenants"] = (
                tenant_list_queryset().filter(pk__in=tenant_ids_for(user, Action.VIEW)).order_by("name")
            )
        return render(request, "console/dashboard.html", context)
