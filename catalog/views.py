"""Console pages of the catalogue: a tenant's models (list, upload with progress, inspection and sizing advice,
delete) and the platform's runtime images (list; create and publish for platform admins).

Reads go through the API's selectors and ``restrict``; writes through ``catalog.services``, the functions the
API's views call, so a refusal carries the same code here as there.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFilesSent, ValidationError
from django.forms.utils import ErrorDict
from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.functional import cached_property
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import DetailView, ListView

from catalog import selectors, services, storage
from catalog.filtersets import ModelFilterSet
from catalog.forms import ModelUploadForm, RuntimeImageForm, RuntimeImagePublishForm, SizingQueryForm
from catalog.models import Model, RuntimeImage
from catalog.sizing import size_model_for_pool
from compute_pools.models import ComputePool
from controlplane.console.views import PAGE_SIZE, PlatformAdminMixin, ScopedMixin, ServiceFormView, SignedInMixin
from tenancy.choices import Action
from tenancy.permissions import user_can, user_can_anywhere
from tenancy.querysets import is_platform_admin

MAX_FILES_SHOWN = 200


def _is_xhr(request) -> bool:
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


class ModelListView(ScopedMixin, ListView):
    model = Model
    template_name = "catalog/model_list.html"
    paginate_by = PAGE_SIZE

    def base_queryset(self):
        return selectors.model_list_queryset()

    def get_queryset(self):
        self.filterset = ModelFilterSet(self.request.GET, queryset=super().get_queryset())
        queryset = self.filterset.qs if self.filterset.is_valid() else self.filterset.queryset.none()
        return queryset.order_by("tenant__slug", "name")

    def get_context_data(self, **kwargs):
        return super().get_context_data(title="Models", filter_form=self.filterset.form, **kwargs)


@method_decorator(csrf_exempt, name="dispatch")  # checked in post(), once an over-large upload has been refused
class ModelUploadView(ServiceFormView):
    """Upload a model's files or an archive of them. The upload script posts the form with XMLHttpRequest to show
    progress and gets JSON back; a plain form post works the same and is redirected."""

    form_class = ModelUploadForm
    template_name = "catalog/model_upload.html"
    title = "Upload a model"
    submit_label = "Upload"
    success_message = "Model '{result.name}' uploaded: {result.status}."

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not user_can_anywhere(request.user, Action.OPERATE):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        """Receive the files first: an upload past ``AICP_MODEL_UPLOAD_MAX_BYTES`` stops while it arrives. That
        happens before the CSRF check can read the form's token, so the check runs here, after it; a refused
        upload changes nothing and is only shown on the form."""
        try:
            request.FILES  # noqa: B018 — parsing streams the files to disk and enforces the upload limit
        except RequestDataTooBig as error:
            return self.refuse_unread(ValidationError(str(error), code="upload_too_large"), status=413)
        except TooManyFilesSent:
            limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
            message = f"More than {limit} files; upload them as one archive."
            return self.refuse_unread(ValidationError(message, code="invalid"), status=400)
        refusal = CsrfViewMiddleware(lambda _: None).process_view(request, None, (), {})
        if refusal is not None:
            return refusal
        return super().post(request, *args, **kwargs)

    def refuse_unread(self, error: ValidationError, *, status: int):
        """The form again, with ``error`` on its files: the rest of the request could not be read."""
        form = self.form_class(user=self.request.user)
        form.cleaned_data, form._errors = {}, ErrorDict()
        form.add_error("files", error)
        return self.form_invalid(form, status=status)

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.request.user}

    def perform(self, form):
        data = form.cleaned_data
        return services.model_upload(
            actor=self.request.user,
            tenant=data["tenant"],
            name=data["name"],
            description=data["description"],
            family=data["family"],
            encrypted=data["encrypted"],
            compressed=data["compressed"],
            files=form.named_files() if not data["archive"] else [],
            archive=data["archive"],
        )

    def success_url_for(self, result) -> str:
        return reverse("console:model-detail", args=[result.pk])

    def form_valid(self, form):
        response = super().form_valid(form)
        if _is_xhr(self.request) and response.status_code == 302:
            return JsonResponse({"url": response.url}, status=201)
        return response

    def form_invalid(self, form, status: int = 400):
        response = self.render_to_response(self.get_context_data(form=form))
        response.status_code = status if _is_xhr(self.request) else 200
        return response

    def get_context_data(self, **kwargs):
        return super().get_context_data(cancel_url=reverse("console:model-list"), **kwargs)


def _model_files(model: Model) -> list[tuple[str, int]]:
    """``(relative path, size)`` of the files in the model's folder, the first ``MAX_FILES_SHOWN``."""
    if not model.storage_path:
        return []
    folder = storage.storage_root() / model.storage_path
    if not folder.is_dir():
        return []
    found = sorted(path for path in folder.rglob("*") if path.is_file())[:MAX_FILES_SHOWN]
    return [(str(path.relative_to(folder)), path.stat().st_size) for path in found]


def sizing_pools(user, model: Model):
    """The pools the advice is given for: those granted to the model's tenant that the user sees; every pool for a
    platform admin."""
    pools = ComputePool.objects.select_related("accelerator_type").order_by("name")
    if is_platform_admin(user):
        return pools
    return pools.filter(grants__tenant_id=model.tenant_id).restrict(user, Action.VIEW).distinct()


class ModelDetailView(ScopedMixin, DetailView):
    model = Model
    template_name = "catalog/model_detail.html"
    context_object_name = "model"

    def base_queryset(self):
        return selectors.model_list_queryset()

    def get_context_data(self, **kwargs):
        model = self.object
        query = SizingQueryForm(self.request.GET or None)
        assumptions = query.cleaned_data if query.is_valid() else {}
        sizing = [
            (
                pool,
                size_model_for_pool(
                    model,
                    pool,
                    context_length=assumptions.get("context_length"),
                    concurrent_sequences=assumptions.get("concurrent_sequences") or 1,
                ),
            )
            for pool in sizing_pools(self.request.user, model)
        ]
        return super().get_context_data(
            title=model.name,
            files=_model_files(model),
            sizing=sizing,
            sizing_form=query,
            can_operate=user_can(self.request.user, Action.OPERATE, model.tenant_id),
            **kwargs,
        )


class ModelDeleteView(ScopedMixin, ServiceFormView):
    """The confirmation page of a deletion; refused (``model_in_use``) while an inference task uses the model."""

    model = Model
    form_class = forms.Form
    template_name = "catalog/model_delete.html"
    submit_label = "Delete model"
    success_message = "Model '{result.name}' deleted."

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        self.object = self.get_object()
        if not user_can(request.user, Action.OPERATE, self.object.tenant_id):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    def perform(self, form):
        services.model_delete(actor=self.request.user, model=self.object)
        return self.object

    def get_success_url(self) -> str:
        return reverse("console:model-list")

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            title=f"Delete model {self.object.name}",
            model=self.object,
            task_names=list(self.object.tasks.order_by("name").values_list("name", flat=True)[:10]),
            cancel_url=reverse("console:model-detail", args=[self.object.pk]),
            **kwargs,
        )


class RuntimeImageListView(SignedInMixin, ListView):
    """Every signed-in user reads the images, as in the API; platform admins create and publish."""

    template_name = "catalog/image_list.html"
    paginate_by = PAGE_SIZE

    def get_queryset(self):
        return selectors.runtime_image_list_queryset().restrict(self.request.user, Action.VIEW).order_by("slug")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(title="Runtime images", **kwargs)
        for image in context["object_list"]:
            image.publish_form = RuntimeImagePublishForm(auto_id=f"publish-{image.slug}-%s")
        return context


class RuntimeImageCreateView(PlatformAdminMixin, ServiceFormView):
    form_class = RuntimeImageForm
    title = "New runtime image"
    submit_label = "Create image"
    success_message = "Runtime image '{result.slug}' created. Publish a version to make it deployable."

    def perform(self, form):
        return services.runtime_image_create(actor=self.request.user, **form.cleaned_data)

    def get_success_url(self) -> str:
        return reverse("console:image-list")

    def get_context_data(self, **kwargs):
        return super().get_context_data(cancel_url=reverse("console:image-list"), **kwargs)


class RuntimeImagePublishView(PlatformAdminMixin, ServiceFormView):
    """Publish a version of an image. Rule 6: new tasks get it; running tasks keep the version they pinned and
    show that an update is available until someone updates them."""

    form_class = RuntimeImagePublishForm
    submit_label = "Publish version"
    success_message = "Version {result.version} of '{result.image.slug}' published. Running tasks keep their version."

    @cached_property
    def image(self) -> RuntimeImage:
        return get_object_or_404(RuntimeImage, slug=self.kwargs["slug"])

    def perform(self, form):
        return services.runtime_image_version_publish(actor=self.request.user, image=self.image, **form.cleaned_data)

    def get_success_url(self) -> str:
        return reverse("console:image-list")

    def get_context_data(self, **kwargs):
        image = self.image
        return super().get_context_data(
            title=f"Publish a version of {image.name}",
            intro=f"Repository {image.repository}. Publishing does not touch running tasks: tasks keep their "
            "version until someone updates them.",
            cancel_url=reverse("console:image-list"),
            **kwargs,
        )
