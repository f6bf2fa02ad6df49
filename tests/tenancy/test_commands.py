from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests import factories

pytestmark = pytest.mark.django_db


def test_issue_api_token_prints_a_token_that_opens_the_api(api_as):
    admin = factories.PlatformAdminFactory(username="root")
    out = StringIO()
    call_command("issue_api_token", "root", "--name", "bootstrap", stdout=out)
    token = out.getvalue().strip()
    client = api_as(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get("/api/v1/users/me/")
    assert response.status_code == 200 and response.json()["username"] == "root"
    assert admin.api_tokens.get().name == "bootstrap"


def test_issue_api_token_refuses_an_unknown_user():
    with pytest.raises(CommandError, match="No active user named 'ghost'"):
        call_command("issue_api_token", "ghost")
