"""REST API authentication by personal API token: ``Authorization: Bearer aicp_pat_...``."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions

from tenancy.constants import PERSONAL_TOKEN_PREFIX
from tenancy.credentials import credential_key_id, credential_matches
from tenancy.models import PersonalAPIToken


class APITokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header; expected 'Bearer <token>'.")
        plaintext = header[1]
        key_id = credential_key_id(plaintext, PERSONAL_TOKEN_PREFIX)
        token = None
        if key_id:
            token = PersonalAPIToken.objects.select_related("user").filter(key_id=key_id).first()
        if token is None or not credential_matches(plaintext, token.digest):
            raise exceptions.AuthenticationFailed("Invalid API token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API token has been revoked.")
        now = timezone.now()
        if token.expires_at is not None and token.expires_at <= now:
            raise exceptions.AuthenticationFailed("This API token has expired.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's user is inactive.")
        self._touch(token, now)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'

    @staticmethod
    def _touch(token: PersonalAPIToken, now) -> None:
        resolution = timedelta(seconds=settings.AICP_TOKEN_LAST_USED_RESOLUTION_S)
        if token.last_used_at is None or now - token.last_used_at >= resolution:
            PersonalAPIToken.objects.filter(pk=token.pk).update(last_used_at=now)
