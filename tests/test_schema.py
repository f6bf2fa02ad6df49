"""The OpenAPI schema is valid and generates without a single warning (what `spectacular --validate
--fail-on-warn` checks), and the docs pages are served from the vendored assets, not a CDN."""

import pytest
from django.core.management import call_command


def test_openapi_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    schema = (tmp_path / "schema.yaml").read_text()
    assert "/api/v1/tasks/dry-run/" in schema
    assert "/api/v1/tasks/{id}/update-image/" in schema


@pytest.mark.django_db
def test_api_docs_use_no_cdn(client):
    page = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn" not in page.lower()


# ---- errors, slugs and nulls as the schema publishes them (issue 13) ---------------------------------------

METHODS = ("get", "post", "patch", "delete")
ERROR_REF = "#/components/schemas/Error"


def generated_schema(patterns=None) -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)


def test_every_operation_documents_the_errors_it_can_answer_in_the_one_error_shape():
    schema = generated_schema()
    checked = 0
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            responses = item[method]["responses"]
            expected = {"400", "401"} | ({"404"} if "{" in path else set())
            if "requestBody" in item[method]:
                expected.add("415")
            assert expected <= set(responses), (method, path, sorted(responses))
            for status in expected:
                assert responses[status]["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}
            for status, answer in responses.items():
                if status != "414":  # the HTTP server's own answer to an over-long URL
                    assert answer["headers"]["X-Request-Id"]["required"] is True, (method, path, status)
            assert "content" not in responses["414"]
            checked += 1
    assert checked >= 80
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "message", "fields"}
    assert error["properties"]["fields"]["additionalProperties"] == {"type": "array", "items": {"type": "string"}}


def test_403_is_documented_where_a_role_can_be_refused_and_only_there():
    paths = generated_schema()["paths"]
    assert "403" in paths["/api/v1/tasks/"]["post"]["responses"]  # a viewer's write
    assert "403" in paths["/api/v1/api-keys/"]["get"]["responses"]  # tenant admins only
    assert "403" in paths["/api/v1/gateways/{slug}/"]["patch"]["responses"]  # platform admins only
    assert "403" not in paths["/api/v1/tasks/"]["get"]["responses"]  # any role reads (its own tenants')
    assert "403" not in paths["/api/v1/tokens/"]["post"]["responses"]  # anyone makes their own token
    assert {"413", "422"} <= set(paths["/api/v1/ingest/reflow/"]["post"]["responses"])
    assert "413" in paths["/api/v1/models/upload/"]["post"]["responses"]


def test_a_throttled_operation_documents_429_with_retry_after():
    from django.urls import path
    from rest_framework.response import Response
    from rest_framework.throttling import UserRateThrottle
    from rest_framework.views import APIView

    class Throttled(UserRateThrottle):
        rate = "10/minute"

    class ThrottledView(APIView):
        throttle_classes = [Throttled]

        def get(self, request):
            return Response({})

    schema = generated_schema(patterns=[path("api/v1/throttled/", ThrottledView.as_view())])
    answer = schema["paths"]["/api/v1/throttled/"]["get"]["responses"]["429"]
    assert answer["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    assert answer["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}
    assert "429" not in generated_schema()["paths"]["/api/v1/tasks/"]["get"]["responses"]  # nothing is throttled


def test_slug_path_parameters_publish_the_slug_pattern_the_url_accepts():
    for path, item in generated_schema()["paths"].items():
        for method in METHODS:
            for parameter in item.get(method, {}).get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] == "slug":
                    assert parameter["schema"]["pattern"] == "^[-a-zA-Z0-9_]+$", (method, path)


@pytest.mark.django_db
def test_no_stored_slug_fails_the_schema_and_each_family_answers_its_detail_url(platform_admin, api_as):
    """After every migration (seeds included), each slug column holds only slugs the URLs and the schema take."""
    import re

    from django.apps import apps
    from django.db import models

    slug = re.compile(r"^[-a-zA-Z0-9_]+$")
    columns = 0
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, models.SlugField):
                columns += 1
                stored = model._default_manager.values_list(field.name, flat=True)
                assert all(slug.match(value) for value in stored), (model.__name__, list(stored))
    assert columns >= 6
    client = api_as(platform_admin)
    from catalog.models import ModelFamily

    for family in ModelFamily.objects.all():
        assert client.get(f"/api/v1/model-families/{family.slug}/").status_code == 200, family.slug
    assert client.get("/api/v1/model-families/yi-1-5-34b/").json()["name"] == "Yi-1.5-34B"


def test_every_read_field_whose_column_may_be_null_is_nullable_in_the_schema():
    """A declared read-only field (a related object's slug, say) over a nullable column must say so, or a
    response with null breaks the schema clients are generated from."""
    import importlib
    import inspect

    from django.core.exceptions import FieldDoesNotExist
    from rest_framework import serializers

    offenders, checked = [], 0
    for app in ("tenancy", "compute_pools", "gateways", "catalog", "inference_jobs", "telemetry", "reflow"):
        module = importlib.import_module(f"{app}.api.serializers")
        for name, serializer in inspect.getmembers(module, inspect.isclass):
            if not issubclass(serializer, serializers.ModelSerializer) or serializer.__module__ != module.__name__:
                continue
            for field_name, field in serializer().fields.items():
                if not field.read_only or field.allow_null or isinstance(field, serializers.ListSerializer):
                    continue
                model, nullable = serializer.Meta.model, False
                try:
                    for part in (field.source or field_name).split("."):
                        column = model._meta.get_field(part)
                        nullable = nullable or getattr(column, "null", False)
                        model = column.related_model or model
                except FieldDoesNotExist:
                    continue
                checked += 1
                if nullable:
                    offenders.append(f"{name}.{field_name}")
    assert checked > 20
    assert offenders == []
