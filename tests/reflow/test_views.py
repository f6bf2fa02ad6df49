"""Reflow review in the console: the records a user may see, filtered as the API filters them; approve, reject,
edit and bulk review through the services (viewers see no buttons and get a 403); the export is the API's."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from reflow.models import ReflowRecord
from tenancy.choices import Role
from tenancy.models import AuditEntry
from tests import factories
from tests.conftest import member_of
from tests.reflow.test_api import capture
from tests.telemetry.records import iso

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rows(html: str) -> dict[str, str]:
    """``{record id: review status}`` of the rows of ``#reflow-table``."""
    return dict(re.findall(r'<tr data-record-id="([^"]+)" data-review-status="(\w+)"', html))


def status_of(record: ReflowRecord) -> str:
    record.refresh_from_db()
    return record.review_status


def body_lines(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return [json.loads(line) for line in body.splitlines()]


@pytest.fixture
def task(db):
    return factories.TaskFactory(name="support-bot")


@pytest.fixture
def records(task):
    now = datetime.now(UTC)
    return [
        capture(task, at=now - timedelta(hours=3), output="Paris."),
        capture(task, at=now - timedelta(hours=2), output="Berlin is the capital of Germany."),
        capture(task, at=now - timedelta(hours=1), endpoint="completions", messages="Once upon a time"),
    ]


@pytest.fixture
def foreign(db):
    return capture(factories.TaskFactory(name="elsewhere"), output="secret of another tenant")


def test_every_role_sees_its_tenants_records_newest_first(task, records, foreign):
    page = signed_in(member_of(task.tenant, Role.VIEWER)).get("/reflow/").content.decode()
    assert list(rows(page)) == [str(r.pk) for r in reversed(records)]
    assert "What is the capital of France?" in page and "Once upon a time" in page
    assert "secret of another tenant" not in page


def test_another_tenants_record_answers_404(task, records, foreign):
    client = signed_in(member_of(task.tenant, Role.ADMIN))
    assert client.get(f"/reflow/{foreign.pk}/").status_code == 404
    assert client.post(f"/reflow/{foreign.pk}/review/", {"action": "approve"}).status_code == 404
    assert client.post(f"/reflow/{foreign.pk}/", {"edited_output": "mine"}).status_code == 404
    assert status_of(foreign) == "pending"


def test_the_filter_form_filters_as_the_api_does(task, records):
    sibling = factories.TaskFactory(tenant=task.tenant, name="sibling")
    capture(sibling, output="from the sibling")
    client = signed_in(member_of(task.tenant, Role.VIEWER))

    def shown(**params) -> set[str]:
        return set(rows(client.get("/reflow/", params).content.decode()))

    assert shown(task=task.pk) == {str(r.pk) for r in records}
    assert shown(q="berlin") == {str(records[1].pk)}
    assert shown(endpoint="completions") == {str(records[2].pk)}
    since = (datetime.now(UTC) - timedelta(minutes=150)).strftime("%Y-%m-%dT%H:%M")  # a datetime-local input
    assert shown(since=since, task=task.pk) == {str(records[1].pk), str(records[2].pk)}
    invalid = client.get("/reflow/", {"review_status": "maybe"}).content.decode()
    assert rows(invalid) == {} and 'data-code="invalid_choice"' in invalid


def test_a_viewer_sees_no_review_buttons_and_cannot_review(task, records):
    viewer = signed_in(member_of(task.tenant, Role.VIEWER))
    page = viewer.get("/reflow/").content.decode()
    assert 'id="bulk-approve"' not in page and 'name="ids"' not in page and "/review/" not in page
    assert 'id="edit-form"' not in viewer.get(f"/reflow/{records[0].pk}/").content.decode()
    assert viewer.post(f"/reflow/{records[0].pk}/review/", {"action": "approve"}).status_code == 403
    assert viewer.post(f"/reflow/{records[0].pk}/", {"edited_output": "Lyon."}).status_code == 403
    bulk = viewer.post("/reflow/bulk-review/", {"ids": [str(records[0].pk)], "action": "approve"})
    assert bulk.status_code == 403
    assert not ReflowRecord.objects.exclude(review_status="pending").exists()
    assert not AuditEntry.objects.filter(action__startswith="reflow.").exists()


def test_a_member_approves_and_rejects_with_plain_forms_and_with_htmx(task, records):
    member = member_of(task.tenant, Role.MEMBER)
    client = signed_in(member)
    page = client.get(f"/reflow/?task={task.pk}").content.decode()
    assert 'id="bulk-approve"' in page and 'id="bulk-reject"' in page

    back = f"/reflow/?task={task.pk}"
    approved = client.post(f"/reflow/{records[0].pk}/review/", {"action": "approve", "next": back})
    assert approved.status_code == 302 and approved.url == back
    assert status_of(records[0]) == "approved"
    entry = AuditEntry.objects.get(action="reflow.approve")
    assert (entry.actor, entry.tenant, entry.after) == (member, task.tenant, {"review_status": "approved"})

    swapped = client.post(f"/reflow/{records[1].pk}/review/", {"action": "reject"}, headers={"HX-Request": "true"})
    assert swapped.status_code == 200
    assert rows(swapped.content.decode()) == {str(records[1].pk): "rejected"}
    assert status_of(records[1]) == "rejected"
    assert AuditEntry.objects.filter(action="reflow.reject").count() == 1
    assert client.post(f"/reflow/{records[2].pk}/review/", {"action": "maybe"}).status_code == 400


def test_an_edit_approves_and_keeps_the_original_an_empty_edit_shows_the_apis_code(task, records):
    client = signed_in(member_of(task.tenant, Role.ADMIN))
    url = f"/reflow/{records[1].pk}/"
    detail = client.get(url).content.decode()
    assert "Berlin is the capital of Germany." in detail and "What is the capital of France?" in detail

    empty = client.post(url, {"edited_output": "   "}).content.decode()
    assert re.search(r'id="field-edited_output">.*?data-code="reflow_edit_empty"', empty, re.DOTALL)
    assert status_of(records[1]) == "pending"

    saved = client.post(url, {"edited_output": "Berlin."})
    assert saved.status_code == 302
    records[1].refresh_from_db()
    assert (records[1].review_status, records[1].output, records[1].edited_output) == (
        "approved",
        "Berlin is the capital of Germany.",
        "Berlin.",
    )
    assert AuditEntry.objects.get(action="reflow.edit").after == {
        "review_status": "approved",
        "edited_output": "Berlin.",
    }


def test_bulk_review_is_all_or_nothing_and_shows_its_refusal(task, records, foreign):
    client = signed_in(member_of(task.tenant, Role.MEMBER))
    mixed = client.post(
        "/reflow/bulk-review/", {"ids": [str(records[0].pk), str(foreign.pk)], "action": "approve"}, follow=True
    )
    assert 'data-tags="code-reflow_records_not_found"' in mixed.content.decode()
    assert not ReflowRecord.objects.exclude(review_status="pending").exists()

    nothing = client.post("/reflow/bulk-review/", {"action": "approve"}, follow=True)
    assert 'data-tags="code-invalid"' in nothing.content.decode()

    done = client.post("/reflow/bulk-review/", {"ids": [str(r.pk) for r in records[:2]], "action": "reject"})
    assert done.status_code == 302
    assert [status_of(r) for r in records] == ["rejected", "rejected", "pending"]
    assert AuditEntry.objects.filter(action="reflow.reject").count() == 2


def test_the_export_downloads_the_apis_jsonl_of_the_users_tenant_with_the_filters(task, records, foreign, api_as):
    member = member_of(task.tenant, Role.MEMBER)
    client = signed_in(member)
    client.post(f"/reflow/{records[0].pk}/review/", {"action": "approve"})
    client.post(f"/reflow/{records[1].pk}/", {"edited_output": "Berlin."})
    client.post(f"/reflow/{records[2].pk}/review/", {"action": "reject"})
    foreign_admin = signed_in(member_of(foreign.tenant, Role.ADMIN))
    foreign_admin.post(f"/reflow/{foreign.pk}/review/", {"action": "approve"})

    since = iso(datetime.now(UTC) - timedelta(hours=4))
    page = client.get("/reflow/", {"task": task.pk, "since": since, "q": "Paris"}).content.decode()
    link = re.search(r'id="export-chat" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert "q=" not in link and f"task={task.pk}" in link

    viewer = signed_in(member_of(task.tenant, Role.VIEWER))
    chat = viewer.get(link)
    assert chat.status_code == 200 and chat["Content-Type"] == "application/jsonl"
    assert chat["Content-Disposition"] == 'attachment; filename="reflow-chat.jsonl"'
    lines = body_lines(chat)
    assert [line["messages"][-1]["content"] for line in lines] == ["Paris.", "Berlin."]
    assert "secret of another tenant" not in json.dumps(lines)
    api = api_as(member).get("/api/v1/reflow-records/export/", {"task": task.pk, "since": since, "kind": "chat"})
    assert lines == body_lines(api)

    preference = viewer.get("/reflow/export/", {"kind": "preference"})
    assert body_lines(preference) == body_lines(api_as(member).get("/api/v1/reflow-records/export/?kind=preference"))
    assert [line["chosen"][0]["content"] for line in body_lines(viewer.get("/reflow/export/?kind=preference"))] == [
        "Berlin."
    ]
    assert body_lines(viewer.get("/reflow/export/", {"tenant": foreign.tenant.slug})) == []
    assert viewer.get("/reflow/export/", {"kind": "parquet"}).status_code == 400


def test_the_list_runs_a_constant_number_of_queries(task):
    client = signed_in(member_of(task.tenant, Role.MEMBER))
    for _ in range(3):
        capture(task)
    client.get("/reflow/")
    with CaptureQueriesContext(connection) as few:
        client.get("/reflow/")
    for _ in range(30):
        capture(task)
    with CaptureQueriesContext(connection) as many:
        assert len(rows(client.get("/reflow/").content.decode())) == 33
    assert len(few) == len(many)
