"""Input the database cannot hold is a 400 naming the field, never a 500 (``controlplane/api/guard.py``,
``core/storable.py``), on every operation of the published schema.

The cases are enumerated from the OpenAPI schema itself, so a new endpoint, parameter or body field is covered
without a new test: every path parameter, every query parameter and every string in a request body gets a NUL
byte; every date-time query parameter gets an offset of +20:00 (a valid RFC 3339 time PostgreSQL refuses as
given) and a time UTC cannot express. The platform they run on is the fuzz's (``tests/fuzz/world.py``).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from urllib.parse import quote

import pytest
from django.db import OperationalError, transaction
from drf_spectacular.generators import SchemaGenerator

from tests.conftest import api_client_for
from tests.fuzz.world import seed

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "patch", "delete")
NUL = "a\x00b"
OFFSET_20 = "2026-01-01T00:00:00+20:00"  # 2025-12-31T04:00:00Z
BEFORE_YEAR_1_IN_UTC = "0001-01-01T00:00:00+01:00"
# Read by the adapters' ingest views themselves, with the ingest token: tested below on their own.
INGEST = re.compile(r"^/api/v1/ingest/")


@functools.cache
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations():
    for path, item in schema()["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        node = schema()["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def body_schema(operation: dict) -> tuple[str, dict] | None:
    content = operation.get("requestBody", {}).get("content", {})
    for media_type in ("application/json", "multipart/form-data"):
        if media_type in content:
            return media_type, _resolve(content[media_type]["schema"])
    return None


def path_params(operation: dict) -> list[str]:
    return [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]


def query_params(operation: dict) -> list[dict]:
    return [p for p in operation.get("parameters", []) if p["in"] == "query"]


def _case_id(case) -> str:
    return " ".join(str(part) for part in case[:3])


# What each kind of case takes from the schema: a query parameter's schema, or a body property's (resolved).
QUERY_KINDS = {
    "query": lambda param: True,
    "date-time query": lambda param: param.get("format") == "date-time",
    "integer query": lambda param: param.get("type") == "integer" and "enum" not in param,
}
BODY_KINDS = {
    "body": lambda prop: prop.get("type") == "string",
    "bounded string body": lambda prop: prop.get("type") == "string" and "maxLength" in prop,
    "date-time body": lambda prop: prop.get("format") == "date-time",
    "integer body": lambda prop: prop.get("type") == "integer",
}


def cases(kind: str):
    """``(method, path, name)`` per path or query parameter; ``(method, path, name, media type, schema)`` per
    writable body property."""
    found = []
    for path, method, operation in operations():
        if INGEST.match(path):
            continue
        if kind == "path":
            found += [(method, path, name) for name in path_params(operation)]
        elif kind in QUERY_KINDS:
            found += [(method, path, p["name"]) for p in query_params(operation) if QUERY_KINDS[kind](p["schema"])]
        elif body := body_schema(operation):
            media_type, shape = body
            for name, prop in shape.get("properties", {}).items():
                if not prop.get("readOnly") and BODY_KINDS[kind](_resolve(prop)):
                    found.append((method, path, name, media_type, _resolve(prop)))
    assert found, f"the schema has no {kind} cases"
    return found


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Seeded once for this module, inside a transaction rolled back at its end (Django's ``setUpTestData``
    pattern): each test runs in a savepoint of it, so what one test changes the next does not see."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield seed()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def admin(world):
    """The platform admin: every operation is open to it, so a refusal is about the input, not the role."""
    from tenancy.models import User

    return api_client_for(User.objects.get(username="root"))


def url_for(path: str, world, **values) -> str:
    """``path`` with its parameters filled: ``values`` where given, else a real object of the resource."""
    resource = path.removeprefix("/api/v1/").split("/", 1)[0]

    def fill(match):
        name = match.group(1)
        if name in values:
            return quote(values[name], safe="")
        return str(world.identifiers[resource][0])

    return re.sub(r"\{(\w+)\}", fill, path)


def call(client, method: str, url: str, **kwargs):
    return getattr(client, method)(url, **kwargs)


def assert_refused(response, field: str) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:500])
    body = response.json()
    assert body["code"] == "invalid"
    assert field in body["fields"], body
    assert body["fields"][field] == ["Null characters are not allowed."]


@pytest.mark.parametrize("case", cases("path"), ids=_case_id)
def test_a_nul_byte_in_a_path_parameter_is_a_400_naming_it(case, world, admin):
    method, path, name = case
    assert_refused(call(admin, method, url_for(path, world, **{name: NUL})), name)


@pytest.mark.parametrize("case", cases("query"), ids=_case_id)
def test_a_nul_byte_in_a_query_parameter_is_a_400_naming_it(case, world, admin):
    method, path, name = case
    url = url_for(path, world)
    assert_refused(call(admin, method, f"{url}?{quote(name)}={quote(NUL)}"), name)


@pytest.mark.parametrize("case", cases("body"), ids=_case_id)
def test_a_nul_byte_in_a_string_of_a_request_body_is_a_400_naming_it(case, world, admin):
    method, path, name, media_type, _ = case
    url = url_for(path, world)
    if media_type == "application/json":
        response = call(admin, method, url, data=json.dumps({name: NUL}), content_type="application/json")
    else:
        response = call(admin, method, url, data={name: NUL}, format="multipart")
    assert_refused(response, name)


BEYOND_64_BITS = 2**70
LONG = "x" * 3000  # longer than any column but a text one


@pytest.mark.parametrize("case", cases("bounded string body"), ids=_case_id)
def test_a_body_string_longer_than_its_column_is_a_400_naming_it(case, world, admin):
    method, path, name, media_type, prop = case
    value = "y" * (prop["maxLength"] + 1)
    data = json.dumps({name: value}) if media_type == "application/json" else {name: value}
    kwargs = {"content_type": "application/json"} if media_type == "application/json" else {"format": "multipart"}
    response = call(admin, method, url_for(path, world), data=data, **kwargs)
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert name in response.json()["fields"], response.json()


@pytest.mark.parametrize("case", cases("path") + cases("query"), ids=_case_id)
def test_a_long_path_or_query_value_is_never_a_500(case, world, admin):
    method, path, name = case
    if "{" + name + "}" in path:
        response = call(admin, method, url_for(path, world, **{name: LONG}))
    else:
        response = call(admin, method, f"{url_for(path, world)}?{name}={LONG}")
    assert response.status_code in (200, 201, 202, 204, 400, 404), (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith(("application/json", "application/jsonl")) or not response.content


@pytest.mark.parametrize("case", cases("integer query"), ids=_case_id)
def test_an_integer_query_parameter_beyond_64_bits_is_never_a_500(case, world, admin):
    """A lookup of a number no column holds finds nothing (or is refused); it never reaches PostgreSQL as one."""
    method, path, name = case
    for value in (BEYOND_64_BITS, -BEYOND_64_BITS):
        response = call(admin, method, f"{url_for(path, world)}?{name}={value}")
        assert response.status_code in (200, 400), (value, response.status_code, response.content[:300])
        assert response.status_code == 200 or name in response.json()["fields"]


@pytest.mark.parametrize("case", cases("integer body"), ids=_case_id)
def test_an_integer_body_field_beyond_64_bits_is_a_400_naming_it(case, world, admin):
    method, path, name, media_type, _ = case
    data = json.dumps({name: BEYOND_64_BITS}) if media_type == "application/json" else {name: str(BEYOND_64_BITS)}
    kwargs = {"content_type": "application/json"} if media_type == "application/json" else {"format": "multipart"}
    response = call(admin, method, url_for(path, world), data=data, **kwargs)
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert name in response.json()["fields"], response.json()


def window(operation_path: str, method: str, tested: str, value: str) -> str:
    """The query: ``tested`` set to ``value``, every other date-time parameter of the operation to a fixed time
    around it (an end after, a start before), so that two calls differ in that one parameter only."""
    operation = schema()["paths"][operation_path][method]
    query = {}
    for param in query_params(operation):
        if param["schema"].get("format") == "date-time":
            late = param["name"] in ("until", "end", "before")
            query[param["name"]] = "2026-02-01T00:00:00Z" if late else "2025-12-01T00:00:00Z"
    query[tested] = value
    return "&".join(f"{name}={quote(text)}" for name, text in query.items())


@pytest.mark.parametrize("case", cases("date-time query"), ids=_case_id)
def test_a_date_time_filter_takes_an_offset_of_20_hours_as_the_same_instant(case, world, admin):
    """RFC 3339 allows offsets to ±23:59, PostgreSQL to ±15:59: the filter compares the UTC instant."""
    method, path, name = case
    url = url_for(path, world)
    response = call(admin, method, f"{url}?{window(path, method, name, OFFSET_20)}")
    assert response.status_code == 200, (response.status_code, response.content[:500])
    same_instant_in_utc = call(admin, method, f"{url}?{window(path, method, name, '2025-12-31T04:00:00Z')}")
    assert response.json() == same_instant_in_utc.json()


@pytest.mark.parametrize("case", cases("date-time query"), ids=_case_id)
def test_a_date_time_filter_refuses_a_time_utc_cannot_express(case, world, admin):
    method, path, name = case
    response = call(admin, method, f"{url_for(path, world)}?{window(path, method, name, BEFORE_YEAR_1_IN_UTC)}")
    assert response.status_code == 400, (response.status_code, response.content[:500])
    assert response.json()["fields"][name][0] in (
        "The time must fall within the years 1 to 9999 in UTC.",  # a filter (core/filters.py)
        "Datetime value out of range.",  # a serializer's field (DRF's DateTimeField converts to UTC itself)
    )


@pytest.mark.parametrize("case", cases("date-time body"), ids=_case_id)
def test_a_date_time_in_a_body_takes_an_offset_of_20_hours_and_refuses_year_0(case, world, admin):
    """Alone in the body, so that other fields' errors show the time field was read and judged on its own."""
    method, path, name, _media_type, _ = case  # JSON: every operation with a time in its body reads JSON
    url = url_for(path, world)
    for value, accepted in (("2027-01-01T00:00:00+20:00", True), (BEFORE_YEAR_1_IN_UTC, False)):
        response = call(admin, method, url, data=json.dumps({name: value}), content_type="application/json")
        assert response.status_code in (200, 201, 400), (value, response.status_code, response.content[:300])
        refused = response.status_code == 400 and name in response.json()["fields"]
        assert refused is not accepted, (value, response.json())


def test_the_examples_of_the_issue_are_400s_naming_the_field(world, admin):
    gateway = admin.get("/api/v1/gateways/%00/")
    assert gateway.status_code == 400 and gateway.json()["fields"] == {"slug": ["Null characters are not allowed."]}
    key = admin.post("/api/v1/api-keys/", {"tenant": NUL, "name": "x"}, format="json")
    assert key.status_code == 400 and key.json()["fields"] == {"tenant": ["Null characters are not allowed."]}
    log = admin.get(f"/api/v1/audit-log/?since={quote(OFFSET_20)}")
    assert log.status_code == 200


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ('{"name": "ok", "description": "\\ud800"}', "description", "Unpaired surrogate"),
        ('{"name": "ok\\u0000"}', "name", "Null characters"),
        ('{"name": "ok", "x": {"deep": ["fine", "\\u0000"]}}', "x.deep[1]", "Null characters"),
        ('{"name": "ok", "\\u0000": 1}', "\\u0000", "Null characters"),
        ('{"name": "ok", "max_tasks": 1e999}', "max_tasks", "Numbers must be finite"),
    ],
)
def test_a_json_body_value_no_column_can_hold_is_named_by_its_path(world, admin, body, field, message):
    response = admin.patch("/api/v1/tenants/acme/", data=body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["fields"][field][0].startswith(message)


def test_a_nan_in_a_signed_in_body_is_a_400_not_stored(world, admin):
    from tenancy.models import Tenant

    before = Tenant.objects.get(slug="acme").description
    response = admin.patch("/api/v1/tenants/acme/", data='{"description": NaN}', content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"
    assert Tenant.objects.get(slug="acme").description == before


def test_console_pages_answer_a_nul_byte_in_their_query_with_a_400_page(world, client):
    """(Their paths take slugs and ids through Django's converters, which match no NUL: a 404.)"""
    from tenancy.models import User

    client.force_login(User.objects.get(username="root"))
    assert client.get("/gateways/%00/").status_code == 404
    for page in ("/tasks/", "/reflow/", "/audit/"):
        assert client.get(f"{page}?q=%00").status_code == 400, page
    # The console's filter forms are the API's FilterSets: the same instants.
    assert client.get(f"/audit/?since={quote(OFFSET_20)}").status_code == 200
    refused = client.get(f"/reflow/?since={quote(BEFORE_YEAR_1_IN_UTC)}")
    assert refused.status_code == 200 and "The time must fall within the years 1 to 9999 in UTC." in refused.text


def test_an_unknown_api_address_is_a_json_404(admin):
    response = admin.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Nothing is at this address.", "fields": {}}


def test_a_database_failure_is_a_logged_json_500_with_the_request_id(world, admin, monkeypatch, caplog):
    """The one fault injected in this file: the database stops answering (it cannot be made to here)."""
    from inference_jobs.api import views

    def unreachable(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed")

    monkeypatch.setattr(views.InferenceTaskViewSet, "base_queryset", unreachable)
    admin.raise_request_exception = False
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = admin.get("/api/v1/tasks/", headers={"X-Request-Id": "trace-42"})
    assert response.status_code == 500
    assert response["X-Request-Id"] == "trace-42"
    assert response.json()["code"] == "server_error" and response.json()["request_id"] == "trace-42"
    assert "trace-42" in response.json()["message"]
    logged = [record for record in caplog.records if getattr(record, "request_id", None) == "trace-42"]
    assert logged and logged[0].exc_info, "the traceback is logged under the request id"


def test_a_request_id_a_caller_sends_is_kept_only_when_it_is_a_plain_token(admin):
    assert admin.get("/api/v1/users/me/", headers={"X-Request-Id": "abc-123"})["X-Request-Id"] == "abc-123"
    forged = admin.get("/api/v1/users/me/", headers={"X-Request-Id": "x\nERROR forged"})["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", forged)


def test_a_body_with_more_fields_than_django_reads_is_a_json_400(world, admin, settings):
    ids = [("ids", "e3e70682-c209-1cac-a29f-6fbed82c07cd")] * (settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)
    body = "&".join(f"{name}={value}" for name, value in [*ids, ("action", "approve")])
    response = admin.post(
        "/api/v1/reflow-records/bulk-review/", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and "number of GET/POST parameters" in response.json()["message"]


def test_a_body_larger_than_the_server_reads_is_a_json_413(world, admin, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = admin.patch("/api/v1/tenants/acme/", {"description": "x" * 2000}, format="json")
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_the_format_filter_of_models_filters_instead_of_choosing_a_renderer(world, admin):
    assert admin.get("/api/v1/models/?format=pytorch").status_code == 200
    assert admin.get("/api/v1/models/?format=gguf").json()["fields"]["format"]


def test_an_upload_whose_file_path_holds_a_nul_is_a_400_and_stores_nothing(world, admin):
    """(Django drops non-printable characters from the file names themselves; the paths are form fields.)"""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from catalog.models import Model

    before = Model.objects.count()
    upload = SimpleUploadedFile("config.json", b"{}", content_type="application/json")
    body = {"tenant": "acme", "name": "nul", "files": [upload], "paths": ["sub\x00/config.json"]}
    response = admin.post("/api/v1/models/upload/", body, format="multipart")
    assert response.status_code == 400, response.content
    assert response.json()["fields"] == {"paths": ["Null characters are not allowed."]}
    assert Model.objects.count() == before


def test_a_request_django_refuses_outside_drf_is_a_json_400_that_echoes_no_setting(admin):
    response = admin.get("/api/v1/users/me/", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert response.json() == {"code": "invalid", "message": "The request is malformed.", "fields": {}}


def test_json_nested_deeper_than_the_decoder_goes_is_a_400(world, admin):
    deep = '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = admin.patch("/api/v1/tenants/acme/", data=deep, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"


def test_the_walk_names_a_value_however_deep_it_lies():
    from core.storable import find_unstorable

    deep = node = []
    for _ in range(50_000):  # far past Python's recursion limit
        node.append([])
        node = node[0]
    node.append({"ok": "fine", "bad": "x\x00"})
    where, message = find_unstorable({"messages": deep})
    assert where == "messages" + "[0]" * 50_001 + ".bad" and message == "Null characters are not allowed."
