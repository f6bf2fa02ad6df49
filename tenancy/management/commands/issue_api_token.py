"""``manage.py issue_api_token USERNAME``: a personal API token for scripts, printed once.

The REST API takes tokens, not passwords; this is how the first platform admin (made with
``createsuperuser``) gets one. Later tokens can be made through ``POST /api/v1/tokens/``.
"""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tenancy.models import User
from tenancy.services import personal_token_create


class Command(BaseCommand):
    help = "Issue a personal API token for USERNAME and print it (it is shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="What the token is for (shown in the token list).")
        parser.add_argument("--expires-in-days", type=int, default=None, help="Default: never expires.")

    def handle(self, *args, username: str, name: str, expires_in_days: int | None, **options):
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user named '{username}'.")
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError("--expires-in-days must be at least 1.")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        created = personal_token_create(actor=user, name=name, expires_at=expires_at)
        self.stdout.write(created.plaintext)
