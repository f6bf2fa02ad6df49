"""The catalogue API.

* ``/model-families/`` — validated model families; every signed-in user reads, platform admins write.
* ``/models/`` — a tenant's uploaded models. Read by the tenant's members, changed and deleted by its
  admins and members. There is no JSON create: a model is created by uploading it
  (``POST /models/upload/``, multipart). ``GET /models/{id}/sizing/?compute_pool=<slug>`` advises how
  many cards one instance needs on that pool.
* ``/runtime-images/`` — serving images with their versions, newest first; every signed-in user reads,
  platform admins write. ``POST /runtime-images/{slug}/publish/`` publishes a version: new tasks get it,
  running tasks keep theirs and show ``update_available``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import TooManyFilesSent
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from catalog import selectors, services
from catalog.api.serializers import (
    CatalogModelSerializer,
    ModelFamilySerializer,
    ModelFamilyUpdateSerializer,
    ModelSizingQuerySerializer,
    ModelUpdateSerializer,
    ModelUploadSerializer,
    RuntimeImageSerializer,
    RuntimeImageUpdateSerializer,
    RuntimeImageVersionPublishSerializer,
    RuntimeImageVersionSerializer,
    SizingAdviceSerializer,
)
from catalog.filtersets import ModelFamilyFilterSet, ModelFilterSet, RuntimeImageFilterSet
from catalog.models import Model, ModelFamily, RuntimeImage
from catalog.sizing import size_model_for_pool
from controlplane.api.viewsets import RestrictedModelViewSet, RestrictedViewSetMixin
from tenancy.choices import Action
from tenancy.permissions import PLATFORM
from web.parsers import MultiPartParser


class ModelFamilyViewSet(RestrictedModelViewSet):
    """Model families the platform has validated. Every signed-in user reads them; platform admins write."""

    queryset = ModelFamily.objects.all()
    serializer_class = ModelFamilySerializer
    filterset_class = ModelFamilyFilterSet
    lookup_field = "slug"
    write_action = PLATFORM
    ordering_fields = ["name", "slug", "parameter_count"]

    def tenant_of(self, obj) -> None:
        return None

    def get_serializer_class(self):
        return ModelFamilyUpdateSerializer if self.action == "partial_update" else ModelFamilySerializer

    @extend_schema(request=ModelFamilySerializer, responses={201: ModelFamilySerializer})
    def create(self, request, *args, **kwargs):
        family = services.model_family_create(actor=request.user, **self.validated())
        return self.respond(family, status.HTTP_201_CREATED)

    @extend_schema(request=ModelFamilyUpdateSerializer, responses=ModelFamilySerializer)
    def partial_update(self, request, *args, **kwargs):
        family = self.get_object()
        data = self.validated(partial=True)
        return self.respond(services.model_family_update(actor=request.user, family=family, **data))

    def destroy(self, request, *args, **kwargs):
        """Models of the family keep their data; their family becomes empty."""
        services.model_family_delete(actor=request.user, family=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ModelViewSet(
    RestrictedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """A tenant's models. Members and tenant admins upload, change and delete them; viewers read. Created by
    upload only (``POST /models/upload/``)."""

    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    queryset = Model.objects.all()
    serializer_class = CatalogModelSerializer
    filterset_class = ModelFilterSet
    write_action = Action.OPERATE
    ordering_fields = ["name", "created_at", "parameter_count", "size_bytes", "status"]

    def base_queryset(self):
        return selectors.model_list_queryset()

    def get_serializer_class(self):
        return {
            "partial_update": ModelUpdateSerializer,
            "upload": ModelUploadSerializer,
            "sizing": ModelSizingQuerySerializer,
        }.get(self.action, CatalogModelSerializer)

    @extend_schema(request=ModelUpdateSerializer, responses=CatalogModelSerializer)
    def partial_update(self, request, *args, **kwargs):
        model = self.get_object()
        data = self.validated(partial=True)
        return self.respond(services.model_update(actor=request.user, model=model, **data))

    def destroy(self, request, *args, **kwargs):
        """Refused (``model_in_use``) while an inference task uses the model; its files are removed with it."""
        services.model_delete(actor=request.user, model=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request={"multipart/form-data": ModelUploadSerializer},
        responses={201: CatalogModelSerializer},
        description=(
            "Upload a model in Hugging Face layout (config.json, tokenizer files, *.safetensors or *.bin), as "
            "separate `files` (with `paths` for nested folders) or as one `archive`. A malformed upload is a "
            "400 and stores nothing; an upload past AICP_MODEL_UPLOAD_MAX_BYTES is a 413 (`upload_too_large`). "
            "Otherwise the model is created and inspected: 201 with `status` `ready`, or `failed` with the "
            "reason in `status_message` (checksum mismatch, missing config.json, no weights...)."
        ),
    )
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser])
    def upload(self, request):
        try:
            data = self.validated()
        except TooManyFilesSent as exc:
            limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
            raise ValidationError({"files": [f"More than {limit} files; upload them as one archive."]}) from exc
        files = data.get("files") or []
        paths = data.get("paths") or [uploaded.name for uploaded in files]
        model = services.model_upload(
            actor=request.user,
            tenant=data["tenant"],
            name=data["name"],
            description=data["description"],
            family=data["family"],
            encrypted=data["encrypted"],
            compressed=data["compressed"],
            files=list(zip(paths, files, strict=True)),
            archive=data.get("archive"),
            archive_sha256=data.get("sha256", ""),
            checksums=data.get("checksums"),
        )
        return self.respond(model, status.HTTP_201_CREATED)

    @extend_schema(parameters=[ModelSizingQuerySerializer], responses=SizingAdviceSerializer)
    @action(detail=True, methods=["get"])
    def sizing(self, request, pk=None):
        """How many cards one instance of the model needs on a pool: SPEC's table as the floor, raised when
        weights plus the KV cache of the context do not fit."""
        model = self.get_object()
        serializer = ModelSizingQuerySerializer(data=request.query_params, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        query = serializer.validated_data
        advice = size_model_for_pool(
            model,
            query["compute_pool"],
            context_length=query.get("context_length"),
            concurrent_sequences=query["concurrent_sequences"],
        )
        return Response(SizingAdviceSerializer(advice.as_dict()).data)


class RuntimeImageViewSet(RestrictedModelViewSet):
    """Serving images, one per mode and vendor, with their versions. Every signed-in user reads them;
    platform admins create, change, delete and publish. Publishing never touches running tasks."""

    queryset = RuntimeImage.objects.all()
    serializer_class = RuntimeImageSerializer
    filterset_class = RuntimeImageFilterSet
    lookup_field = "slug"
    write_action = PLATFORM
    ordering_fields = ["slug", "name", "mode", "vendor"]

    def tenant_of(self, obj) -> None:
        return None

    def base_queryset(self):
        return selectors.runtime_image_list_queryset()

    def get_serializer_class(self):
        return {
            "partial_update": RuntimeImageUpdateSerializer,
            "publish": RuntimeImageVersionPublishSerializer,
        }.get(self.action, RuntimeImageSerializer)

    @extend_schema(request=RuntimeImageSerializer, responses={201: RuntimeImageSerializer})
    def create(self, request, *args, **kwargs):
        image = services.runtime_image_create(actor=request.user, **self.validated())
        return self.respond(image, status.HTTP_201_CREATED)

    @extend_schema(request=RuntimeImageUpdateSerializer, responses=RuntimeImageSerializer)
    def partial_update(self, request, *args, **kwargs):
        """Repository, mode and vendor are fixed while a task pins a version (``runtime_image_in_use``)."""
        image = self.get_object()
        data = self.validated(partial=True)
        return self.respond(services.runtime_image_update(actor=request.user, image=image, **data))

    def destroy(self, request, *args, **kwargs):
        """Refused (``runtime_image_in_use``) while a task pins one of its versions."""
        services.runtime_image_delete(actor=request.user, image=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=RuntimeImageVersionPublishSerializer, responses={201: RuntimeImageVersionSerializer})
    @action(detail=True, methods=["post"])
    def publish(self, request, slug=None):
        """Publish a version (an image tag). New tasks deploy it; existing tasks keep their pinned version and
        show ``update_available`` until someone calls ``POST /tasks/{id}/update-image/``."""
        image = self.get_object()
        version = services.runtime_image_version_publish(actor=request.user, image=image, **self.validated())
        return Response(RuntimeImageVersionSerializer(version).data, status=status.HTTP_201_CREATED)
